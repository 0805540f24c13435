// Entry point of the jpeg_binding addon: argument validation and the JS <-> C++ hand-over.
//
// Arguments are checked before libjpeg sees a byte, and a bad one becomes a JS TypeError /
// RangeError with `code` = ERR_JPEG_INVALID_ARGUMENT. Data libjpeg refuses is not an exception:
// the call answers { error }, and the caller falls back to sharp, which says what is wrong with it.
#include <facegate/native_errors.h>
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "colour.h"
#include "jpeg.h"

namespace facegate_jpeg {

namespace {

constexpr facegate_native::ErrorCode kInvalidArgument{"ERR_JPEG_INVALID_ARGUMENT"};
// Decodes are refused above this many output pixels whatever the caller allows: the output
// buffer's size in bytes then stays far inside what a Node Buffer may hold.
constexpr double kMaxPixels = 1 << 28;

// A whole number in [minimum, maximum]: a non-number is a TypeError, anything else (NaN, fractions,
// out of range) a RangeError saying `<name> must be <rule>`.
double RequireWhole(const Napi::Value& value, const std::string& name, double minimum, double maximum,
                    const std::string& rule) {
  if (!value.IsNumber()) kInvalidArgument.ThrowTypeError(value.Env(), name + " must be a number");
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!(number >= minimum && number <= maximum) || std::trunc(number) != number) {
    kInvalidArgument.ThrowRangeError(value.Env(), name + " must be " + rule);
  }
  return number;
}

const char* ColourSpaceName(ColourSpace space) {
  switch (space) {
    case ColourSpace::kGrey:
      return "grey";
    case ColourSpace::kRgb:
      return "rgb";
    case ColourSpace::kYCbCr:
      return "ycbcr";
    case ColourSpace::kCmyk:
      return "cmyk";
    case ColourSpace::kYcck:
      return "ycck";
    default:
      return "unknown";
  }
}

// A JPEG the call does not decode: `reason` says why in a word the caller can branch on, `error`
// in words (libjpeg's where it refused the data).
Napi::Object ErrorAnswer(Napi::Env env, const char* reason, const char* message) {
  Napi::Object answer = Napi::Object::New(env);
  answer.Set("reason", Napi::String::New(env, reason));
  answer.Set("error", Napi::String::New(env, message));
  return answer;
}

// readHeader(bytes: Uint8Array): { width, height, components, colourSpace, progressive,
//   orientation, iccProfile } | { reason, error }.
Napi::Value ReadHeader(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1) kInvalidArgument.ThrowTypeError(env, "readHeader expects (bytes)");
  const Napi::Uint8Array bytes = kInvalidArgument.RequireUint8Array(info[0], "bytes");
  JpegHeader header;
  if (!ReadJpegHeader(bytes.Data(), bytes.ByteLength(), header)) return ErrorAnswer(env, "unreadable", header.error);
  Napi::Object answer = Napi::Object::New(env);
  answer.Set("width", header.width);
  answer.Set("height", header.height);
  answer.Set("components", header.components);
  answer.Set("colourSpace", ColourSpaceName(header.colourSpace));
  answer.Set("progressive", header.progressive);
  answer.Set("orientation", header.orientation);
  answer.Set("iccProfile", header.iccProfile);
  return answer;
}

// Frees what libjpeg malloc'ed for an embedded profile.
struct FreeDeleter {
  void operator()(std::uint8_t* data) const { std::free(data); }
};

// decode(bytes: Uint8Array, maxPixels, outputProfile: Uint8Array | undefined, shrink: 1 | 2 | 4 | 8, upright:
//   boolean): { width, height, orientation, data: Uint8Array } | { reason, error }: RGB at 1/shrink of the size
//   (libjpeg's scaled IDCT), converted from an embedded ICC profile to `outputProfile` (libvips' own sRGB, for
//   sharp's result) and, when `upright`, turned by the EXIF orientation, where the result is sharp's; otherwise why
//   not ('unreadable', 'colour-space', 'icc-profile', 'orientation', 'too-many-pixels', 'corrupt').
Napi::Value Decode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 5) {
    kInvalidArgument.ThrowTypeError(env, "decode expects (bytes, maxPixels, outputProfile, shrink, upright)");
  }
  kInvalidArgument.RequireUint8Array(info[0], "bytes");
  const double maxPixels = RequireWhole(info[1], "maxPixels", 1, HUGE_VAL, "a positive integer");
  const bool hasOutputProfile = !info[2].IsUndefined();
  if (hasOutputProfile) kInvalidArgument.RequireUint8Array(info[2], "outputProfile");
  const int shrink = static_cast<int>(RequireWhole(info[3], "shrink", 1, 8, "1, 2, 4 or 8"));
  if ((shrink & (shrink - 1)) != 0) kInvalidArgument.ThrowRangeError(env, "shrink must be 1, 2, 4 or 8");
  if (!info[4].IsBoolean()) kInvalidArgument.ThrowTypeError(env, "upright must be a boolean");
  const bool upright = info[4].As<Napi::Boolean>().Value();

  JpegHeader header;
  IccProfile embedded{nullptr, 0};
  {
    const Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
    if (!ReadJpegHeader(bytes.Data(), bytes.ByteLength(), header, hasOutputProfile ? &embedded : nullptr)) {
      return ErrorAnswer(env, "unreadable", header.error);
    }
  }
  const std::unique_ptr<std::uint8_t, FreeDeleter> embeddedData(embedded.data);
  // What libvips converts (other colour spaces) or reads its own way (EXIF it cannot parse here)
  // is left to sharp, and so is an embedded profile without an output profile to convert to. A grey
  // JPEG without a profile becomes sRGB as libvips makes it (B_W to sRGB: the grey value in all three
  // bands), which is libjpeg's own grey to RGB; through a grey profile libvips converts, not copies.
  const bool grey = header.components == 1 && header.colourSpace == ColourSpace::kGrey;
  if (!grey && (header.components != 3 || header.colourSpace != ColourSpace::kYCbCr)) {
    return ErrorAnswer(env, "colour-space", "not a three-component YCbCr or a grey JPEG");
  }
  if (grey && header.iccProfile) return ErrorAnswer(env, "icc-profile", "a grey JPEG with an embedded profile");
  if (header.orientation < 0) return ErrorAnswer(env, "orientation", "an unreadable or repeated EXIF block");
  const double pixels = static_cast<double>(header.width) * static_cast<double>(header.height);
  if (pixels > maxPixels || pixels > kMaxPixels) return ErrorAnswer(env, "too-many-pixels", "more pixels than allowed");
  // Last, so that no transform is built for a JPEG declined anyway.
  std::shared_ptr<const ColourTransform> transform;
  if (header.iccProfile) {
    if (!hasOutputProfile) return ErrorAnswer(env, "icc-profile", "an embedded ICC profile, and no output profile");
    if (!embeddedData) return ErrorAnswer(env, "icc-profile", "ICC profile chunks that do not make one profile");
    const Napi::Uint8Array output = info[2].As<Napi::Uint8Array>();
    const char* whyNot = nullptr;
    transform = TransformBetween(embeddedData.get(), embedded.length, output.Data(), output.ByteLength(), &whyNot);
    if (!transform) return ErrorAnswer(env, "icc-profile", whyNot);
  }

  // Allocated before the input's memory is taken: an allocation may run the garbage collector.
  // A Buffer is malloc'ed without zeroing; every byte is written by a successful decode.
  int width;
  int height;
  ShrunkSize(header.width, header.height, shrink, width, height);
  const std::size_t outBytes = static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3;
  const Napi::Buffer<std::uint8_t> buffer = Napi::Buffer<std::uint8_t>::New(env, outBytes);
  const bool turned = upright && header.orientation >= 2;
  std::vector<std::uint8_t> stored(turned ? outBytes : 0);
  std::uint8_t* decoded = turned ? stored.data() : buffer.Data();
  const Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  char error[200];
  if (!DecodeJpeg(bytes.Data(), bytes.ByteLength(), shrink, decoded, width, height, error)) {
    return ErrorAnswer(env, "corrupt", error);
  }
  // Pixel by pixel, so before or after turning the photo alike.
  if (transform) ConvertInPlace(*transform, decoded, static_cast<std::size_t>(width) * static_cast<std::size_t>(height));
  if (turned) Orient(stored.data(), width, height, header.orientation, buffer.Data());
  const bool swapped = turned && header.orientation >= 5;
  Napi::Object answer = Napi::Object::New(env);
  answer.Set("width", swapped ? height : width);
  answer.Set("height", swapped ? width : height);
  answer.Set("orientation", turned ? 1 : header.orientation);
  answer.Set("data", Napi::Uint8Array::New(env, outBytes, buffer.ArrayBuffer(), buffer.ByteOffset()));
  return answer;
}

// orient(data: Uint8Array, width, height, orientation: 1-8): Uint8Array: the RGB image turned upright by the EXIF
//   orientation (sides swapped for 5-8), as libvips' autorotate does.
Napi::Value OrientImage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 4) kInvalidArgument.ThrowTypeError(env, "orient expects (data, width, height, orientation)");
  const Napi::Uint8Array data = kInvalidArgument.RequireUint8Array(info[0], "data");
  const int width = static_cast<int>(RequireWhole(info[1], "width", 1, 65535, "an integer in [1, 65535]"));
  const int height = static_cast<int>(RequireWhole(info[2], "height", 1, 65535, "an integer in [1, 65535]"));
  const int orientation = static_cast<int>(RequireWhole(info[3], "orientation", 1, 8, "an integer in [1, 8]"));
  const std::size_t bytes = static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3;
  if (data.ByteLength() != bytes) kInvalidArgument.ThrowRangeError(env, "data must hold width * height * 3 bytes");
  Napi::Buffer<std::uint8_t> turned = Napi::Buffer<std::uint8_t>::New(env, bytes);
  // The input's memory is taken after the allocation, as in decode.
  const Napi::Uint8Array source = info[0].As<Napi::Uint8Array>();
  if (orientation == 1) {
    std::copy(source.Data(), source.Data() + bytes, turned.Data());
  } else {
    Orient(source.Data(), width, height, orientation, turned.Data());
  }
  return Napi::Uint8Array::New(env, bytes, turned.ArrayBuffer(), turned.ByteOffset());
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("readHeader", Napi::Function::New<ReadHeader>(env, "readHeader"));
  exports.Set("decode", Napi::Function::New<Decode>(env, "decode"));
  exports.Set("orient", Napi::Function::New<OrientImage>(env, "orient"));
  exports.Set("libjpegTurboVersion", Napi::Number::New(env, LibjpegTurboVersion()));
  exports.Set("littleCmsVersion", Napi::Number::New(env, LittleCmsVersion()));
  return exports;
}

}  // namespace

}  // namespace facegate_jpeg

namespace {

// NODE_API_MODULE expects an unqualified name.
Napi::Object InitJpegBinding(Napi::Env env, Napi::Object exports) { return facegate_jpeg::Init(env, exports); }

}  // namespace

NODE_API_MODULE(jpeg_binding, InitJpegBinding)
