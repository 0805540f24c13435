// Bit-exact C++ ports of two JavaScript resamplers of packages/pipeline/src/image/raster.ts:
//   SeparableResizeLike  = separableResize (axisTaps + horizontal float32 pass + vertical pass)
//   ResampleAffineLike   = resampleAffine (bilinear through an output -> source affine map)
// and the pixel loop of toPlanarTensor (interleaved bytes -> planar float tensor via a table):
//   WritePlanarTensor
//
// Every JS number is a double here, every Float32Array element a float, the operations run in
// the same order, and binding.gyp passes -ffp-contract=off (no FMA, no fast-math), so the bytes
// are identical to the JS ones. Free of N-API; addon.cc validates the JS arguments.
#pragma once

#include <cstdint>

#include "resample.h"

namespace facegate_resample {

// A fractional source rectangle (may extend past the image).
struct FloatRect {
  double x;
  double y;
  double width;
  double height;
};

// separableResize(image, rect, outWidth, outHeight, { fill: hasFill ? fill : undefined, antialias }).
// Preconditions (checked by the caller): image valid, sizes >= 1, rect finite with bounded size
// (the tap tables are ~2 * rect side + 3 * out side entries), out has outWidth * outHeight * 3 bytes.
// May throw std::bad_alloc.
void SeparableResizeLike(const ImageView& image, const FloatRect& rect, int outWidth, int outHeight, bool hasFill,
                         double fill, bool antialias, std::uint8_t* out);

// resampleAffine(image, [a, b, tx, c, d, ty], outWidth, outHeight, replicate ? 'replicate' : fill).
// `affine` maps output (u, v) to source (a*u + b*v + tx, c*u + d*v + ty); all six finite.
void ResampleAffineLike(const ImageView& image, const double affine[6], int outWidth, int outHeight, bool replicate,
                        double fill, std::uint8_t* out);

// The pixel loop of toPlanarTensor: tensor[planeStart[c] + (y + offsetY) * width + offsetX + x] =
// table[256 * c + byte c of pixel (x, y)] for each source channel c, where planeStart[c] is
// channelPlanes[c] * width * height. Table values are stored as they are, so the floats are the
// JavaScript ones. Preconditions (checked by the caller): channelPlanes a permutation of 0, 1, 2;
// the image placed inside the width x height canvas; tensor holds width * height * 3 floats.
void WritePlanarTensor(const ImageView& image, const float* table, float* tensor, int width, int height,
                       int offsetX, int offsetY, const int channelPlanes[3]);

}  // namespace facegate_resample
