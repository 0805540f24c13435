// Bit-exact port of libvips 8.18.7's `vips_resize(kernel = linear)` on 3-band uchar images,
// as sharp 0.35.5 drives it for `extract(region).resize(w, h, { fit: 'fill', kernel: 'linear' })`.
//
// This header is free of N-API so the arithmetic can be read (and tested) on its own;
// addon.cc validates the JS arguments and calls ResizeLikeLibvips().
#pragma once

#include <cstddef>
#include <cstdint>

namespace facegate_resample {

// A tightly packed RGB image (3 bytes per pixel, rows of width * 3 bytes).
struct ImageView {
  const std::uint8_t* data;
  int width;
  int height;
};

// Integer pixel rectangle; the caller guarantees it lies inside the image.
struct Region {
  int x;
  int y;
  int width;
  int height;
};

// Writes outWidth * outHeight * 3 bytes to `out`: byte for byte what libvips produces.
// Preconditions (checked by the caller): sizes >= 1, region inside the image, out large enough.
// Runs on the calling thread; all mutable state is local or thread_local, so it is safe to
// call concurrently from several worker threads. May throw std::bad_alloc, or std::logic_error
// if the geometry does not come out at the requested size (a bug, never expected).
void ResizeLikeLibvips(const ImageView& image, const Region& region, int outWidth, int outHeight,
                       std::uint8_t* out);

}  // namespace facegate_resample
