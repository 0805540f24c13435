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

// A JPEG the call does not decode: `reason` says why in a word the caller can branch on ('unreadable',
// 'colour-space', 'too-many-pixels', 'corrupt'), `error` in libjpeg's words.
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

// decode(bytes: Uint8Array, shrink: 1 | 2 | 4 | 8, maxPixels, orientation: 0-8): { width, height,
//   data: Uint8Array } | { reason, error }: RGB at 1/shrink of the size, turned upright by
//   `orientation` (0 and 1: as stored); refused above maxPixels output pixels.
Napi::Value Decode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 4) ThrowTypeError(env, "decode expects (bytes, shrink, maxPixels, orientation)");
  RequireBytes(info[0]);
  if (!info[1].IsNumber()) ThrowTypeError(env, "shrink must be a number");
  const double shrinkValue = info[1].As<Napi::Number>().DoubleValue();
  if (shrinkValue != 1 && shrinkValue != 2 && shrinkValue != 4 && shrinkValue != 8) {
    ThrowRangeError(env, "shrink must be 1, 2, 4 or 8");
  }
  const int shrink = static_cast<int>(shrinkValue);
  if (!info[2].IsNumber()) ThrowTypeError(env, "maxPixels must be a number");
  const double maxPixels = info[2].As<Napi::Number>().DoubleValue();
  if (!(maxPixels >= 1) || std::trunc(maxPixels) != maxPixels) {
    ThrowRangeError(env, "maxPixels must be a positive integer");
  }
  if (!info[3].IsNumber()) ThrowTypeError(env, "orientation must be a number");
  const double orientationValue = info[3].As<Napi::Number>().DoubleValue();
  if (!(orientationValue >= 0 && orientationValue <= 8) || std::trunc(orientationValue) != orientationValue) {
    ThrowRangeError(env, "orientation must be an integer from 0 to 8");
  }
  const int orientation = static_cast<int>(orientationValue);

  JpegHeader header;
  {
    const Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
    if (!ReadJpegHeader(bytes.Data(), bytes.ByteLength(), header)) {
      return ErrorAnswer(env, "unreadable", header.error);
    }
  }
  if (header.components != 3) return ErrorAnswer(env, "colour-space", "not a three-component JPEG");
  int outWidth;
  int outHeight;
  ScaledSize(header.width, header.height, shrink, outWidth, outHeight);
  const double pixels = static_cast<double>(outWidth) * static_cast<double>(outHeight);
  if (pixels > maxPixels || pixels > kMaxPixels) return ErrorAnswer(env, "too-many-pixels", "more pixels than allowed");

  // Allocated before the input's memory is taken: an allocation may run the garbage collector.
  // A Buffer is malloc'ed without zeroing; every byte is written by a successful decode.
  const std::size_t outBytes = static_cast<std::size_t>(outWidth) * static_cast<std::size_t>(outHeight) * 3;
  const Napi::Buffer<std::uint8_t> buffer = Napi::Buffer<std::uint8_t>::New(env, outBytes);
  const bool turned = orientation >= 2;
  std::vector<std::uint8_t> stored(turned ? outBytes : 0);
  const Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  char error[200];
  if (!DecodeJpeg(bytes.Data(), bytes.ByteLength(), shrink, turned ? stored.data() : buffer.Data(), outWidth,
                  outHeight, error)) {
    return ErrorAnswer(env, "corrupt", error);
  }
  if (turned) Orient(stored.data(), outWidth, outHeight, orientation, buffer.Data());
  const bool swapped = orientation >= 5;
  Napi::Object answer = Napi::Object::New(env);
  answer.Set("width", swapped ? outHeight : outWidth);
  answer.Set("height", swapped ? outWidth : outHeight);
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
