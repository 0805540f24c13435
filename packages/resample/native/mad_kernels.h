// Bit-exact C++ ports of the pixel loops of the morph detector's consistency features
// (packages/pipeline/src/mad/consistency-features.ts), which are the JavaScript reference:
//   WarpLumaChroma          = warp (bilinear crop into luma and BT.601 chroma planes)
//   BoxBlurPlane            = boxBlur (separable box blur, borders repeated)
//   GradientAutocorrelation = the loop of ghostAutocorrelation
// As in raster.h: JS numbers are doubles here, Float32Array elements floats, the operations run
// in the same order, and binding.gyp passes -ffp-contract=off, so the values are the JS ones.
// Free of N-API; addon.cc validates the JS arguments.
#pragma once

#include <cstdint>

#include "resample.h"

namespace facegate_resample {

// The planes of a width x height crop that WarpLumaChroma writes.
struct LumaChromaPlanes {
  float* luma;
  float* chromaBlue;
  float* chromaRed;
  std::uint8_t* valid;
};

// Crop pixel (x, y) samples the image at (a*x + b*y + tx, c*x + d*y + ty), `cropToSource` =
// [a, b, tx, c, d, ty], all finite; pixels whose 2x2 source square leaves the image are invalid
// (0 in every plane). Each plane holds width * height values.
void WarpLumaChroma(const ImageView& image, const double cropToSource[6], int width, int height,
                    const LumaChromaPlanes& planes);

// Box blur of radius `radius` (>= 0) of a width x height plane, rows then columns, the borders
// repeated, sums in double. `source` and `out` hold width * height floats and may not overlap.
// May throw std::bad_alloc.
void BoxBlurPlane(const float* source, int width, int height, int radius, float* out);

// What a window of lines adds up: for every `lineStep`-th line in [lineFrom, lineTo) (rows, or
// columns where `vertical`) the central difference of `smooth` along it at positions
// [alongFrom, alongTo) (0 where either neighbour is invalid), and for every `lagStep`-th lag in
// [0, lagMax] the sum of its products with itself `lag` positions on, added to correlation[lag]
// (lagMax + 1 doubles, the others left as they are). Lines and positions lie in [1, side - 1)
// of a width x height plane (checked by the caller). May throw std::bad_alloc.
void GradientAutocorrelation(const float* smooth, const std::uint8_t* valid, int width, int height, bool vertical,
                             int lineFrom, int lineTo, int lineStep, int alongFrom, int alongTo, int lagMax,
                             int lagStep, double* correlation);

}  // namespace facegate_resample
