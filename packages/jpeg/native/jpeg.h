// libjpeg(-turbo) behind two calls that never longjmp into C++ frames: a header read and a decode
// into a buffer the caller allocated. Free of N-API; addon.cc validates the JS arguments.
#pragma once

#include <cstddef>
#include <cstdint>

namespace facegate_jpeg {

enum class ColourSpace { kUnknown, kGrey, kRgb, kYCbCr, kCmyk, kYcck };

// What the header says, and what the markers the decode would act on say.
struct JpegHeader {
  int width;
  int height;
  int components;
  ColourSpace colourSpace;
  bool progressive;
  // EXIF orientation 1-8; 0 without an EXIF block or without the tag; -1 where the EXIF block
  // could not be read.
  int orientation;
  bool iccProfile;
  // The libjpeg message of a failure, empty on success.
  char error[200];
};

// An embedded ICC profile, assembled from its APP2 chunks by libjpeg; `data` is malloc'ed (free it).
struct IccProfile {
  std::uint8_t* data;
  unsigned int length;
};

// Reads the header and the APP1 (EXIF) and APP2 (ICC) markers; false (with header.error) where
// libjpeg refuses the data. With `icc`, also the embedded profile where the chunks make one
// (icc->data stays null where there is none, or where they are malformed).
bool ReadJpegHeader(const std::uint8_t* bytes, std::size_t length, JpegHeader& header, IccProfile* icc = nullptr);

// The size libvips' shrink-on-load gives a width x height JPEG at 1/shrink (1, 2, 4 or 8): each
// side divided, rounded down (libjpeg rounds up; the partial last row and column are dropped).
void ShrunkSize(int width, int height, int shrink, int& outWidth, int& outHeight);

// Decodes to RGB at 1/shrink of the size (libjpeg's scaled IDCT: shrink 1, 2, 4 or 8, as libvips'
// shrink-on-load), 3 bytes per pixel, rows packed, into `out` of width * height * 3 bytes (the
// size ShrunkSize gives: libjpeg's last, partial row and column are left out). The default libjpeg settings (integer IDCT, fancy upsampling), as libvips
// decodes. false where libjpeg fails or warns (corrupt or truncated data), with `error` set; `out`
// is then partly written.
bool DecodeJpeg(const std::uint8_t* bytes, std::size_t length, int shrink, std::uint8_t* out, int width, int height,
                char (&error)[200]);

// `image` (width x height RGB, as stored) turned upright by EXIF orientation 2-8 into `out`, whose
// sides are swapped for orientations 5-8: libvips' autorotate, a permutation of the pixels.
void Orient(const std::uint8_t* image, int width, int height, int orientation, std::uint8_t* out);

// The linked libjpeg-turbo's version as MMMmmmppp (2.1.5: 2001005); 0 for another libjpeg.
int LibjpegTurboVersion();

}  // namespace facegate_jpeg
