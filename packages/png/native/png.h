// PNG decoding through the system's libpng, for the PNGs whose pixels libvips reads unchanged.
#pragma once

#include <cstddef>
#include <cstdint>

namespace facegate_png {

// Why a PNG is not decoded here: the caller leaves it to sharp, which decodes or refuses it.
enum class Decline {
  kNone,
  kUnreadable,     // no PNG header libpng can read
  kFormat,         // 16-bit samples, or greyscale below 8 bits: libvips scales those its own way
  kIccProfile,     // an embedded ICC profile, which sharp converts to sRGB
  kExif,           // an eXIf chunk, whose orientation sharp applies
  kTooManyPixels,  // more pixels than allowed
  kCorrupt,        // libpng failed or warned while reading: libvips (failOn 'warning') fails too
};

struct PngHeader {
  int width = 0;
  int height = 0;
  // An alpha channel, or a transparent colour: flattened onto white.
  bool alpha = false;
};

// Reads the PNG header in `bytes`: kNone where its pixels are decoded here (8-bit samples or a
// palette, no profile or eXIf, at most `maxPixels` pixels); otherwise why not, in words in `error`.
Decline ReadPngHeader(const std::uint8_t* bytes, std::size_t length, double maxPixels, PngHeader& header, char* error,
                      std::size_t errorSize);

// Decodes the PNG whose header ReadPngHeader accepted into `out`: RGB, 3 bytes a pixel, rows
// packed (`expected`'s width × height × 3 bytes), as sharp's decode gives it: palettes expanded,
// alpha flattened onto white, grey repeated into three channels. kCorrupt where libpng fails or
// warns on the way (then `out` is incomplete).
Decline DecodePng(const std::uint8_t* bytes, std::size_t length, const PngHeader& expected, std::uint8_t* out,
                  char* error, std::size_t errorSize);

// libpng's version, e.g. 10639 for 1.6.39.
unsigned LibpngVersion();

}  // namespace facegate_png
