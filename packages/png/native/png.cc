// PNG decoding through libpng for the PNGs whose pixels sharp's decode computes without a
// colour conversion.
//
// A PNG is lossless: every correct decoder gives the same samples. What sharp does beyond that
// is reproduced here where it is exact integer work, and left to sharp otherwise by declining:
// palettes are expanded to their colours, a transparent colour (tRNS) becomes an alpha channel,
// alpha is flattened onto white with libvips' integer arithmetic (out = (v a + 255 (255 - a)) / 255,
// truncated: checked against sharp on every value and alpha), and grey is repeated into three
// channels as libvips turns B_W into sRGB. An ICC profile (converted to sRGB), an eXIf chunk (its
// orientation applied), 16-bit samples and greyscale below 8 bits (both scaled) are left to sharp.
// Gamma, chromaticity and sRGB chunks change nothing here, as in libvips, which ignores them too.
//
// libpng reports errors by longjmp: the function that calls setjmp holds only plain values, and
// everything the jump can skip is C (libpng) or a callback without destructors.
#include "png.h"

#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>

namespace facegate_png {

namespace {

struct Reader {
  const std::uint8_t* data;
  std::size_t length;
  std::size_t offset;
  char* error;
  std::size_t errorSize;
  bool warned;
};

void ReadFrom(png_structp png, png_bytep out, png_size_t count) {
  Reader* reader = static_cast<Reader*>(png_get_io_ptr(png));
  if (count > reader->length - reader->offset) png_error(png, "the data ends before the image does");
  std::memcpy(out, reader->data + reader->offset, count);
  reader->offset += count;
}

[[noreturn]] void OnError(png_structp png, png_const_charp message) {
  Reader* reader = static_cast<Reader*>(png_get_error_ptr(png));
  std::snprintf(reader->error, reader->errorSize, "%s", message);
  png_longjmp(png, 1);
}

// libvips fails on warnings (sharp's failOn: 'warning'), so a warning declines the PNG once read.
void OnWarning(png_structp png, png_const_charp message) {
  Reader* reader = static_cast<Reader*>(png_get_error_ptr(png));
  if (!reader->warned) std::snprintf(reader->error, reader->errorSize, "%s", message);
  reader->warned = true;
}

// Outputs above this many pixels are refused whatever the caller allows: the output's size in
// bytes then stays far inside what a Node Buffer may hold.
constexpr double kMaxPixels = 1 << 28;

// libvips' flatten onto a white background for 8-bit samples: (v a + 255 (255 - a)) / 255 in
// integers, truncated, alpha dropped.
void FlattenOntoWhite(const std::uint8_t* rgba, std::size_t pixels, std::uint8_t* rgb) {
  for (std::size_t index = 0; index < pixels; ++index, rgba += 4, rgb += 3) {
    const unsigned alpha = rgba[3];
    const unsigned white = 255 * (255 - alpha);
    for (int band = 0; band < 3; ++band) rgb[band] = static_cast<std::uint8_t>((rgba[band] * alpha + white) / 255);
  }
}

// What the header says of the stored pixels, or why they are not read here.
Decline Accept(png_structp png, png_infop info, double maxPixels, PngHeader& header, char* error,
               std::size_t errorSize) {
  const png_uint_32 width = png_get_image_width(png, info);
  const png_uint_32 height = png_get_image_height(png, info);
  const int depth = png_get_bit_depth(png, info);
  const int type = png_get_color_type(png, info);
  const bool palette = type == PNG_COLOR_TYPE_PALETTE;
  if (palette ? depth > 8 : depth != 8) {
    std::snprintf(error, errorSize, "colour type %d at %d bits", type, depth);
    return Decline::kFormat;
  }
  if (png_get_valid(png, info, PNG_INFO_iCCP)) {
    std::snprintf(error, errorSize, "an embedded ICC profile");
    return Decline::kIccProfile;
  }
#ifdef PNG_eXIf_SUPPORTED
  if (png_get_valid(png, info, PNG_INFO_eXIf)) {
    std::snprintf(error, errorSize, "an eXIf chunk");
    return Decline::kExif;
  }
#else
#error "libpng without eXIf support would decode PNGs whose orientation sharp applies"
#endif
  const double pixels = static_cast<double>(width) * static_cast<double>(height);
  if (pixels > maxPixels || pixels > kMaxPixels) {
    std::snprintf(error, errorSize, "%u×%u pixels, over the limit", width, height);
    return Decline::kTooManyPixels;
  }
  header.width = static_cast<int>(width);
  header.height = static_cast<int>(height);
  header.alpha = (type & PNG_COLOR_MASK_ALPHA) != 0 || png_get_valid(png, info, PNG_INFO_tRNS) != 0;
  return Decline::kNone;
}

// The header, and with `out` the pixels: `out` holds width × height × 3 bytes for `expected`, the
// header read before, and nothing is written unless this read finds the same size (the bytes may
// be shared memory that another thread changed in between).
Decline Read(const std::uint8_t* bytes, std::size_t length, double maxPixels, PngHeader& header,
             const PngHeader* expected, std::uint8_t* out, char* error, std::size_t errorSize) {
  error[0] = '\0';
  if (length < 8 || png_sig_cmp(bytes, 0, 8) != 0) {
    std::snprintf(error, errorSize, "no PNG signature");
    return Decline::kUnreadable;
  }
  Reader reader{bytes, length, 0, error, errorSize, false};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &reader, OnError, OnWarning);
  if (png == nullptr) {
    std::snprintf(error, errorSize, "libpng could not start");
    return Decline::kCorrupt;
  }
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    std::snprintf(error, errorSize, "libpng could not start");
    return Decline::kCorrupt;
  }
  // Read after a jump: volatile, as setjmp requires of what changes after it.
  volatile bool headerRead = false;
  png_bytep volatile withAlpha = nullptr;
  if (setjmp(png_jmpbuf(png))) {
    if (withAlpha != nullptr) png_free(png, withAlpha);
    png_destroy_read_struct(&png, &info, nullptr);
    return headerRead ? Decline::kCorrupt : Decline::kUnreadable;
  }
  png_set_read_fn(png, &reader, ReadFrom);
  png_read_info(png, info);
  headerRead = true;
  Decline decline = reader.warned ? Decline::kCorrupt : Accept(png, info, maxPixels, header, error, errorSize);
  if (decline == Decline::kNone && out != nullptr &&
      (header.width != expected->width || header.height != expected->height)) {
    std::snprintf(error, errorSize, "the header changed between two reads");
    decline = Decline::kCorrupt;
  }
  if (decline == Decline::kNone && out != nullptr) {
    png_set_expand(png);  // palette to RGB, tRNS to alpha
    png_set_gray_to_rgb(png);
    const int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    const std::size_t pixels = static_cast<std::size_t>(header.width) * static_cast<std::size_t>(header.height);
    const std::size_t stride = static_cast<std::size_t>(header.width) * (header.alpha ? 4 : 3);
    if (png_get_rowbytes(png, info) != stride) png_error(png, "unexpected row size");
    // Without alpha straight into the output. With alpha through RGBA rows, flattened into the
    // output: one row at a time, or for an interlaced PNG the whole image, whose passes (Adam7)
    // fill the same rows in turn.
    const bool wholeImage = passes > 1;
    if (header.alpha) withAlpha = static_cast<png_bytep>(png_malloc(png, (wholeImage ? pixels : header.width) * 4));
    const std::size_t outStride = static_cast<std::size_t>(header.width) * 3;
    for (int pass = 0; pass < passes; ++pass) {
      for (int y = 0; y < header.height; ++y) {
        if (!header.alpha) {
          png_read_row(png, out + static_cast<std::size_t>(y) * stride, nullptr);
        } else if (wholeImage) {
          png_read_row(png, withAlpha + static_cast<std::size_t>(y) * stride, nullptr);
        } else {
          png_read_row(png, withAlpha, nullptr);
          FlattenOntoWhite(withAlpha, static_cast<std::size_t>(header.width),
                           out + static_cast<std::size_t>(y) * outStride);
        }
      }
    }
    if (header.alpha && wholeImage) FlattenOntoWhite(withAlpha, pixels, out);
    // The chunks after the image, up to IEND, with their checksums: libvips reads the whole file too.
    png_read_end(png, nullptr);
    if (reader.warned) decline = Decline::kCorrupt;
    if (withAlpha != nullptr) {
      png_free(png, withAlpha);
      withAlpha = nullptr;
    }
  }
  png_destroy_read_struct(&png, &info, nullptr);
  return decline;
}

}  // namespace

Decline ReadPngHeader(const std::uint8_t* bytes, std::size_t length, double maxPixels, PngHeader& header, char* error,
                      std::size_t errorSize) {
  return Read(bytes, length, maxPixels, header, nullptr, nullptr, error, errorSize);
}

Decline DecodePng(const std::uint8_t* bytes, std::size_t length, const PngHeader& expected, std::uint8_t* out,
                  char* error, std::size_t errorSize) {
  PngHeader header;
  return Read(bytes, length, kMaxPixels, header, &expected, out, error, errorSize);
}

unsigned LibpngVersion() { return static_cast<unsigned>(png_access_version_number()); }

}  // namespace facegate_png
