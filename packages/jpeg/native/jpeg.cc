// libjpeg's error handling is setjmp/longjmp: every function here that calls into libjpeg keeps
// its state in plain C structs and holds no C++ object with a destructor, so a longjmp out of
// libjpeg skips nothing that needed to run.
#include "jpeg.h"

#include <csetjmp>
#include <cstdio>  // jpeglib.h uses FILE and size_t without including them
#include <cstring>

#include <jpeglib.h>

namespace facegate_jpeg {

namespace {

struct ErrorManager {
  jpeg_error_mgr base;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  // Set while reading an embedded profile, whose bogus chunks libjpeg only warns about: the
  // profile is then missing, not the image unreadable.
  bool warningsAreHarmless;
};

[[noreturn]] void OnError(j_common_ptr info) {
  ErrorManager* manager = reinterpret_cast<ErrorManager*>(info->err);
  (*info->err->format_message)(info, manager->message);
  std::longjmp(manager->jump, 1);
}

// A warning (corrupt or truncated data that libjpeg would decode anyway) fails the decode as an
// error would: libvips fails on it too (sharp's failOn: 'warning'), and the caller falls back to
// sharp, which says why. Trace messages (level >= 0) are ignored.
void OnMessage(j_common_ptr info, int level) {
  if (level < 0 && !reinterpret_cast<ErrorManager*>(info->err)->warningsAreHarmless) OnError(info);
}

void Install(jpeg_decompress_struct& decompress, ErrorManager& manager) {
  decompress.err = jpeg_std_error(&manager.base);
  manager.base.error_exit = OnError;
  manager.base.emit_message = OnMessage;
  manager.message[0] = '\0';
  manager.warningsAreHarmless = false;
}

void CopyMessage(const ErrorManager& manager, char (&error)[200]) {
  std::snprintf(error, sizeof error, "%s", manager.message[0] != '\0' ? manager.message : "libjpeg failed");
}

std::uint32_t ReadUnsigned(const std::uint8_t* at, int bytes, bool littleEndian) {
  std::uint32_t value = 0;
  for (int index = 0; index < bytes; index++) {
    const std::uint32_t byte = at[littleEndian ? index : bytes - 1 - index];
    value |= byte << (8 * index);
  }
  return value;
}

// The Orientation tag (0x0112) of IFD0 in an APP1 "Exif\0\0" block: 1-8, 0 where IFD0 has no such
// tag, -1 where the block is malformed or the value is not a single SHORT in 1-8.
int ExifOrientation(const std::uint8_t* data, std::size_t length) {
  constexpr std::size_t kPrefix = 6;  // "Exif\0\0"
  if (length < kPrefix + 8) return -1;
  const std::uint8_t* tiff = data + kPrefix;
  const std::size_t size = length - kPrefix;
  bool littleEndian;
  if (tiff[0] == 'I' && tiff[1] == 'I') {
    littleEndian = true;
  } else if (tiff[0] == 'M' && tiff[1] == 'M') {
    littleEndian = false;
  } else {
    return -1;
  }
  if (ReadUnsigned(tiff + 2, 2, littleEndian) != 42) return -1;
  const std::uint32_t ifd = ReadUnsigned(tiff + 4, 4, littleEndian);
  if (ifd < 8 || ifd > size - 2) return -1;
  const std::uint32_t entries = ReadUnsigned(tiff + ifd, 2, littleEndian);
  if (entries * 12ULL > size - ifd - 2) return -1;
  for (std::uint32_t entry = 0; entry < entries; entry++) {
    const std::uint8_t* at = tiff + ifd + 2 + entry * 12;
    if (ReadUnsigned(at, 2, littleEndian) != 0x0112) continue;
    const std::uint32_t type = ReadUnsigned(at + 2, 2, littleEndian);
    const std::uint32_t count = ReadUnsigned(at + 4, 4, littleEndian);
    if (type != 3 || count != 1) return -1;
    const std::uint32_t value = ReadUnsigned(at + 8, 2, littleEndian);
    return value >= 1 && value <= 8 ? static_cast<int>(value) : -1;
  }
  return 0;
}

bool StartsWith(const jpeg_marker_struct* marker, const char* prefix, std::size_t prefixLength) {
  return marker->data_length >= prefixLength && std::memcmp(marker->data, prefix, prefixLength) == 0;
}

ColourSpace ColourSpaceOf(J_COLOR_SPACE space) {
  switch (space) {
    case JCS_GRAYSCALE:
      return ColourSpace::kGrey;
    case JCS_RGB:
      return ColourSpace::kRgb;
    case JCS_YCbCr:
      return ColourSpace::kYCbCr;
    case JCS_CMYK:
      return ColourSpace::kCmyk;
    case JCS_YCCK:
      return ColourSpace::kYcck;
    default:
      return ColourSpace::kUnknown;
  }
}

}  // namespace

bool ReadJpegHeader(const std::uint8_t* bytes, std::size_t length, JpegHeader& header, IccProfile* icc) {
  jpeg_decompress_struct decompress;
  ErrorManager manager;
  Install(decompress, manager);
  header.error[0] = '\0';
  if (icc != nullptr) *icc = {nullptr, 0};
  if (setjmp(manager.jump)) {
    CopyMessage(manager, header.error);
    jpeg_destroy_decompress(&decompress);
    return false;
  }
  jpeg_create_decompress(&decompress);
  jpeg_mem_src(&decompress, bytes, static_cast<unsigned long>(length));
  jpeg_save_markers(&decompress, JPEG_APP0 + 1, 0xffff);
  jpeg_save_markers(&decompress, JPEG_APP0 + 2, 0xffff);
  if (jpeg_read_header(&decompress, TRUE) != JPEG_HEADER_OK) {
    std::strcpy(header.error, "no image in the data (tables only)");
    jpeg_destroy_decompress(&decompress);
    return false;
  }
  header.width = static_cast<int>(decompress.image_width);
  header.height = static_cast<int>(decompress.image_height);
  header.components = decompress.num_components;
  header.colourSpace = ColourSpaceOf(decompress.jpeg_color_space);
  header.progressive = decompress.progressive_mode != 0;
  header.orientation = 0;
  header.iccProfile = false;
  int exifBlocks = 0;
  for (const jpeg_marker_struct* marker = decompress.marker_list; marker != nullptr; marker = marker->next) {
    if (marker->marker == JPEG_APP0 + 2 && StartsWith(marker, "ICC_PROFILE\0", 12)) header.iccProfile = true;
    if (marker->marker == JPEG_APP0 + 1 && StartsWith(marker, "Exif\0\0", 6)) {
      // libvips keeps the last EXIF block it meets; two are not worth guessing about.
      header.orientation = ++exifBlocks > 1 ? -1 : ExifOrientation(marker->data, marker->data_length);
    }
  }
  // libjpeg checks the chunks' numbering before it allocates, and only warns where it is bogus
  // (the profile then stays null); nothing can fail once the profile is allocated.
  if (icc != nullptr && header.iccProfile) {
    JOCTET* data = nullptr;
    unsigned int dataLength = 0;
    manager.warningsAreHarmless = true;
    if (jpeg_read_icc_profile(&decompress, &data, &dataLength)) *icc = {data, dataLength};
    manager.warningsAreHarmless = false;
  }
  jpeg_destroy_decompress(&decompress);
  return true;
}

void ShrunkSize(int width, int height, int shrink, int& outWidth, int& outHeight) {
  // libjpeg rounds a scaled side up (the last pixel then stands for a partial block); libvips'
  // shrink-on-load keeps only whole pixels, and sharp's resize works from that size.
  outWidth = width / shrink > 0 ? width / shrink : 1;
  outHeight = height / shrink > 0 ? height / shrink : 1;
}

bool DecodeJpeg(const std::uint8_t* bytes, std::size_t length, int shrink, std::uint8_t* out, int width, int height,
                char (&error)[200]) {
  jpeg_decompress_struct decompress;
  ErrorManager manager;
  Install(decompress, manager);
  error[0] = '\0';
  if (setjmp(manager.jump)) {
    CopyMessage(manager, error);
    jpeg_destroy_decompress(&decompress);
    return false;
  }
  jpeg_create_decompress(&decompress);
  jpeg_mem_src(&decompress, bytes, static_cast<unsigned long>(length));
  if (jpeg_read_header(&decompress, TRUE) != JPEG_HEADER_OK ||
      (decompress.num_components != 3 && decompress.jpeg_color_space != JCS_GRAYSCALE)) {
    std::strcpy(error, "not a three-component or a grey JPEG");
    jpeg_destroy_decompress(&decompress);
    return false;
  }
  decompress.out_color_space = JCS_RGB;
  decompress.scale_num = 1;
  decompress.scale_denom = static_cast<unsigned int>(shrink);
  jpeg_start_decompress(&decompress);
  const int decodedWidth = static_cast<int>(decompress.output_width);
  const int decodedHeight = static_cast<int>(decompress.output_height);
  if (decodedWidth < width || decodedHeight < height || decodedWidth > width + 1 || decodedHeight > height + 1 ||
      decompress.output_components != 3) {
    std::strcpy(error, "libjpeg decodes to another size than its header said");
    jpeg_destroy_decompress(&decompress);
    return false;
  }
  const std::size_t rowBytes = static_cast<std::size_t>(width) * 3;
  if (decodedWidth == width) {
    // Straight into `out`; a partial last row (scaled decodes only) goes to `spare`, allocated by
    // libjpeg's pool so that a longjmp leaves nothing behind.
    JSAMPARRAY spare = decodedHeight > height ? (*decompress.mem->alloc_sarray)(
                                                    reinterpret_cast<j_common_ptr>(&decompress), JPOOL_IMAGE,
                                                    static_cast<JDIMENSION>(rowBytes), 1)
                                              : nullptr;
    while (decompress.output_scanline < decompress.output_height) {
      JSAMPROW rows[8];
      const unsigned int first = decompress.output_scanline;
      const unsigned int count = decompress.output_height - first < 8 ? decompress.output_height - first : 8;
      for (unsigned int row = 0; row < count; row++) {
        rows[row] = first + row < static_cast<unsigned int>(height) ? out + (first + row) * rowBytes : spare[0];
      }
      jpeg_read_scanlines(&decompress, rows, count);
    }
  } else {
    // One column more than kept: each row through a scratch row of libjpeg's width.
    JSAMPARRAY scratch = (*decompress.mem->alloc_sarray)(reinterpret_cast<j_common_ptr>(&decompress), JPOOL_IMAGE,
                                                        static_cast<JDIMENSION>(decodedWidth) * 3, 1);
    while (decompress.output_scanline < decompress.output_height) {
      const unsigned int row = decompress.output_scanline;
      jpeg_read_scanlines(&decompress, scratch, 1);
      if (row < static_cast<unsigned int>(height)) std::memcpy(out + row * rowBytes, scratch[0], rowBytes);
    }
  }
  jpeg_finish_decompress(&decompress);
  jpeg_destroy_decompress(&decompress);
  return true;
}

void Orient(const std::uint8_t* image, int width, int height, int orientation, std::uint8_t* out) {
  const bool swapped = orientation >= 5;
  const int outWidth = swapped ? height : width;
  const int outHeight = swapped ? width : height;
  for (int y = 0; y < outHeight; y++) {
    std::uint8_t* target = out + static_cast<std::size_t>(y) * outWidth * 3;
    for (int x = 0; x < outWidth; x++, target += 3) {
      // The stored pixel shown at (x, y).
      int sourceX;
      int sourceY;
      switch (orientation) {
        case 2:  // mirrored left to right
          sourceX = width - 1 - x;
          sourceY = y;
          break;
        case 3:  // turned 180 degrees
          sourceX = width - 1 - x;
          sourceY = height - 1 - y;
          break;
        case 4:  // mirrored top to bottom
          sourceX = x;
          sourceY = height - 1 - y;
          break;
        case 5:  // transposed
          sourceX = y;
          sourceY = x;
          break;
        case 6:  // shown turned 90 degrees clockwise
          sourceX = y;
          sourceY = height - 1 - x;
          break;
        case 7:  // transversed
          sourceX = width - 1 - y;
          sourceY = height - 1 - x;
          break;
        default:  // 8: shown turned 90 degrees anticlockwise
          sourceX = width - 1 - y;
          sourceY = x;
          break;
      }
      const std::uint8_t* source = image + (static_cast<std::size_t>(sourceY) * width + sourceX) * 3;
      target[0] = source[0];
      target[1] = source[1];
      target[2] = source[2];
    }
  }
}

int LibjpegTurboVersion() {
#ifdef LIBJPEG_TURBO_VERSION_NUMBER
  return LIBJPEG_TURBO_VERSION_NUMBER;
#else
  return 0;
#endif
}

}  // namespace facegate_jpeg
