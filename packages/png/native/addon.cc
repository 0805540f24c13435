// Entry point of the png_binding addon: argument validation and the JS <-> C++ hand-over.
//
// A bad argument becomes a JS TypeError / RangeError with `code` = ERR_PNG_INVALID_ARGUMENT. A PNG
// not decoded here is not an exception: the call answers { reason, error }, and the caller leaves
// the PNG to sharp, which decodes it or says what is wrong with it.
#include <facegate/native_errors.h>
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "png.h"

namespace facegate_png {

namespace {

constexpr facegate_native::ErrorCode kInvalidArgument{"ERR_PNG_INVALID_ARGUMENT"};

const char* DeclineName(Decline decline) {
  switch (decline) {
    case Decline::kUnreadable:
      return "unreadable";
    case Decline::kFormat:
      return "format";
    case Decline::kIccProfile:
      return "icc-profile";
    case Decline::kExif:
      return "exif";
    case Decline::kTooManyPixels:
      return "too-many-pixels";
    default:
      return "corrupt";
  }
}

Napi::Object DeclineAnswer(Napi::Env env, Decline decline, const char* message) {
  Napi::Object answer = Napi::Object::New(env);
  answer.Set("reason", Napi::String::New(env, DeclineName(decline)));
  answer.Set("error", Napi::String::New(env, message));
  return answer;
}

// decode(bytes: Uint8Array, maxPixels): { width, height, data: Uint8Array } | { reason, error }: RGB, 3 bytes a
//   pixel, as sharp's decode gives it, where png.cc reproduces that exactly; otherwise why not ('unreadable',
//   'format', 'icc-profile', 'exif', 'too-many-pixels', 'corrupt').
Napi::Value Decode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2) kInvalidArgument.ThrowTypeError(env, "decode expects (bytes, maxPixels)");
  kInvalidArgument.RequireUint8Array(info[0], "bytes");
  if (!info[1].IsNumber()) kInvalidArgument.ThrowTypeError(env, "maxPixels must be a number");
  const double maxPixels = info[1].As<Napi::Number>().DoubleValue();
  if (!(maxPixels >= 1) || std::trunc(maxPixels) != maxPixels) {
    kInvalidArgument.ThrowRangeError(env, "maxPixels must be a positive integer");
  }

  char error[200];
  PngHeader header;
  {
    const Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
    const Decline decline = ReadPngHeader(bytes.Data(), bytes.ByteLength(), maxPixels, header, error, sizeof error);
    if (decline != Decline::kNone) return DeclineAnswer(env, decline, error);
  }
  // Allocated before the input's memory is taken again: an allocation may run the garbage
  // collector. A Buffer is malloc'ed without zeroing; a successful decode writes every byte.
  const std::size_t outBytes = static_cast<std::size_t>(header.width) * static_cast<std::size_t>(header.height) * 3;
  const Napi::Buffer<std::uint8_t> buffer = Napi::Buffer<std::uint8_t>::New(env, outBytes);
  const Napi::Uint8Array bytes = info[0].As<Napi::Uint8Array>();
  const Decline decline = DecodePng(bytes.Data(), bytes.ByteLength(), header, buffer.Data(), error, sizeof error);
  if (decline != Decline::kNone) return DeclineAnswer(env, decline, error);
  Napi::Object answer = Napi::Object::New(env);
  answer.Set("width", header.width);
  answer.Set("height", header.height);
  answer.Set("data", Napi::Uint8Array::New(env, outBytes, buffer.ArrayBuffer(), buffer.ByteOffset()));
  return answer;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("decode", Napi::Function::New<Decode>(env, "decode"));
  exports.Set("libpngVersion", Napi::Number::New(env, LibpngVersion()));
  return exports;
}

}  // namespace

}  // namespace facegate_png

namespace {

// NODE_API_MODULE expects an unqualified name.
Napi::Object InitPngBinding(Napi::Env env, Napi::Object exports) { return facegate_png::Init(env, exports); }

}  // namespace

NODE_API_MODULE(png_binding, InitPngBinding)
