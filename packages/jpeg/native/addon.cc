// Entry point of the jpeg_binding addon: argument validation and the JS <-> C++ hand-over.
//
// Arguments are checked before libjpeg sees a byte, and a bad one becomes a JS TypeError /
// RangeError with `code` = ERR_JPEG_INVALID_ARGUMENT. Data libjpeg refuses is not an exception:
// the call answers { error }, and the caller falls back to sharp, which says what is wrong with it.
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "jpeg.h"

namespace facegate_jpeg {

namespace {

constexpr const char* kInvalidArgument = "ERR_JPEG_INVALID_ARGUMENT";
// Decodes are refused above this many output pixels whatever the caller allows: the output
// buffer's size in bytes then stays far inside what a Node Buffer may hold.
constexpr double kMaxPixels = 1 << 28;

[[noreturn]] void ThrowTypeError(Napi::Env env, const std::string& message) {
  Napi::Error error = Napi::TypeError::New(env, message);
  error.Set("code", Napi::String::New(env, kInvalidArgument));
  throw error;
}

[[noreturn]] void ThrowRangeError(Napi::Env env, const std::string& message) {
  Napi::Error error = Napi::RangeError::New(env, message);
  error.Set("code", Napi::String::New(env, kInvalidArgument));
  throw error;
}

Napi::Uint8Array RequireBytes(const Napi::Value& value) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowTypeError(value.Env(), "bytes must be a Uint8Array");
  }
  return value.As<Napi::Uint8Array>();
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
  if (info.Length() != 1) ThrowTypeError(env, "readHeader expects (bytes)");
  const Napi::Uint8Array bytes = RequireBytes(info[0]);
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

// decode(bytes: Uint8Array, maxPixels): { width, height, data: Uint8Array } | { reason, error }: RGB,
//   turned upright by the EXIF orientation, where the result is sharp's; otherwise why not
//   ('unreadable', 'colour-space', 'icc-profile', 'orientation', 'too-many-pixels', 'corrupt').
Napi::Value Decode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2) ThrowTypeError(env, "decode expects (bytes, maxPixels)");
  RequireBytes(info[0]);
  if (!info[1].IsNumber()) ThrowTypeError(env, "maxPixels must be a number");
  const double maxPixels = info[1].As<Napi::Number>().DoubleValue();
  if (!(maxPixels >= 1) || std::trunc(maxPixels) != maxPixels) {
    ThrowRangeError(env, "maxPixels must be a positive integer");
  }

  JpegHeader header;
  {
    const Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
    if (!ReadJpegHeader(bytes.Data(), bytes.ByteLength(), header)) {
      return ErrorAnswer(env, "unreadable", header.error);
    }
  }
  // What libvips converts (other colour spaces, embedded profiles) or reads its own way (EXIF it
  // cannot parse here) is left to sharp.
  if (header.components != 3 || header.colourSpace != ColourSpace::kYCbCr) {
    return ErrorAnswer(env, "colour-space", "not a three-component YCbCr JPEG");
  }
  if (header.iccProfile) return ErrorAnswer(env, "icc-profile", "an embedded ICC profile");
  if (header.orientation < 0) return ErrorAnswer(env, "orientation", "an unreadable or repeated EXIF block");
  const double pixels = static_cast<double>(header.width) * static_cast<double>(header.height);
  if (pixels > maxPixels || pixels > kMaxPixels) return ErrorAnswer(env, "too-many-pixels", "more pixels than allowed");

  // Allocated before the input's memory is taken: an allocation may run the garbage collector.
  // A Buffer is malloc'ed without zeroing; every byte is written by a successful decode.
  const int width = header.width;
  const int height = header.height;
  const std::size_t outBytes = static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3;
  const Napi::Buffer<std::uint8_t> buffer = Napi::Buffer<std::uint8_t>::New(env, outBytes);
  const bool turned = header.orientation >= 2;
  std::vector<std::uint8_t> stored(turned ? outBytes : 0);
  const Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  char error[200];
  if (!DecodeJpeg(bytes.Data(), bytes.ByteLength(), turned ? stored.data() : buffer.Data(), width, height, error)) {
    return ErrorAnswer(env, "corrupt", error);
  }
  if (turned) Orient(stored.data(), width, height, header.orientation, buffer.Data());
  const bool swapped = header.orientation >= 5;
  Napi::Object answer = Napi::Object::New(env);
  answer.Set("width", swapped ? height : width);
  answer.Set("height", swapped ? width : height);
  answer.Set("data", Napi::Uint8Array::New(env, outBytes, buffer.ArrayBuffer(), buffer.ByteOffset()));
  return answer;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("readHeader", Napi::Function::New<ReadHeader>(env, "readHeader"));
  exports.Set("decode", Napi::Function::New<Decode>(env, "decode"));
  exports.Set("libjpegTurboVersion", Napi::Number::New(env, LibjpegTurboVersion()));
  return exports;
}

}  // namespace

}  // namespace facegate_jpeg

namespace {

// NODE_API_MODULE expects an unqualified name.
Napi::Object InitJpegBinding(Napi::Env env, Napi::Object exports) { return facegate_jpeg::Init(env, exports); }

}  // namespace

NODE_API_MODULE(jpeg_binding, InitJpegBinding)
