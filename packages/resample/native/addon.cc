// Entry point of the resample_binding addon: argument validation and the JS <-> C++ hand-over.
//
// Every argument is checked here before any pixel is touched, and every failure becomes a JS
// TypeError / RangeError (with `code` = ERR_RESAMPLE_INVALID_ARGUMENT), so misuse from JS can
// never read or write out of bounds or abort the process.
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <exception>
#include <new>
#include <string>

#include "resample.h"

namespace facegate_resample {

namespace {

constexpr const char* kInvalidArgument = "ERR_RESAMPLE_INVALID_ARGUMENT";
// Input sides: far above any photo the service accepts, and small enough that every index the
// plan computes (positions * 128, byte offsets within a row) stays comfortably inside int.
constexpr int kMaxInputSide = 65535;
// Output sides: network inputs are a few hundred pixels; this bounds the allocation.
constexpr int kMaxOutputSide = 16384;

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

Napi::Object RequireObject(const Napi::Value& value, const char* name) {
  if (!value.IsObject() || value.IsArray() || value.IsFunction()) {
    ThrowTypeError(value.Env(), std::string(name) + " must be an object");
  }
  return value.As<Napi::Object>();
}

// An integer in [minimum, maximum]; a non-number is a TypeError, anything else out of range
// (NaN, infinities, fractions) a RangeError.
int RequireInteger(const Napi::Value& value, const std::string& name, int minimum, int maximum) {
  Napi::Env env = value.Env();
  if (!value.IsNumber()) ThrowTypeError(env, name + " must be a number");
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(number) || std::trunc(number) != number || number < minimum || number > maximum) {
    ThrowRangeError(env, name + " must be an integer between " + std::to_string(minimum) + " and " +
                             std::to_string(maximum) + " (got " + value.ToString().Utf8Value() + ")");
  }
  return static_cast<int>(number);
}

// resize(image: { width, height, data: Uint8Array }, region: { x, y, width, height },
//        outWidth, outHeight): Uint8Array of outWidth * outHeight * 3 bytes.
Napi::Value Resize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 4) ThrowTypeError(env, "resize expects (image, region, outWidth, outHeight)");

  // Read every plain property first: a getter could otherwise run JS after the pixel data was
  // validated (and, say, shrink a resizable ArrayBuffer under it).
  const Napi::Object image = RequireObject(info[0], "image");
  const int width = RequireInteger(image.Get("width"), "image.width", 1, kMaxInputSide);
  const int height = RequireInteger(image.Get("height"), "image.height", 1, kMaxInputSide);
  const Napi::Value dataValue = image.Get("data");
  const Napi::Object regionObject = RequireObject(info[1], "region");
  const int x = RequireInteger(regionObject.Get("x"), "region.x", 0, width - 1);
  const int y = RequireInteger(regionObject.Get("y"), "region.y", 0, height - 1);
  const int regionWidth = RequireInteger(regionObject.Get("width"), "region.width", 1, width - x);
  const int regionHeight = RequireInteger(regionObject.Get("height"), "region.height", 1, height - y);
  const int outWidth = RequireInteger(info[2], "outWidth", 1, kMaxOutputSide);
  const int outHeight = RequireInteger(info[3], "outHeight", 1, kMaxOutputSide);

  if (!dataValue.IsTypedArray()) ThrowTypeError(env, "image.data must be a Uint8Array");
  const napi_typedarray_type type = dataValue.As<Napi::TypedArray>().TypedArrayType();
  if (type != napi_uint8_array && type != napi_uint8_clamped_array) {
    ThrowTypeError(env, "image.data must be a Uint8Array");
  }

  const std::size_t outBytes = static_cast<std::size_t>(outWidth) * static_cast<std::size_t>(outHeight) * 3;
  // Allocated before the input pointer is taken: nothing after this point runs JS.
  // Node's Buffer allocation is a plain malloc; a zero-filled `new Uint8Array(n)` of 230 KB (a
  // 320x240 letterbox) is calloc'ed above glibc's mmap threshold and took ~0.5 ms of fresh page
  // faults on every call. Every byte is written below, so uninitialised memory is fine. The
  // result is handed out as a plain Uint8Array over the Buffer's memory.
  const Napi::Buffer<std::uint8_t> buffer = Napi::Buffer<std::uint8_t>::New(env, outBytes);
  Napi::Uint8Array result = Napi::Uint8Array::New(env, outBytes, buffer.ArrayBuffer(), buffer.ByteOffset());

  const auto data = dataValue.As<Napi::Uint8Array>();  // same memory layout for the clamped variant
  const std::uint64_t expected = static_cast<std::uint64_t>(width) * static_cast<std::uint64_t>(height) * 3;
  if (data.ElementLength() != expected) {
    ThrowRangeError(env, "image.data has " + std::to_string(data.ElementLength()) + " bytes, expected width * " +
                             "height * 3 = " + std::to_string(expected));
  }

  try {
    ResizeLikeLibvips(ImageView{data.Data(), width, height}, Region{x, y, regionWidth, regionHeight}, outWidth,
                      outHeight, result.Data());
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(env, "resample: out of memory");
  } catch (const std::exception& error) {
    throw Napi::Error::New(env, error.what());
  }
  return result;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("resize", Napi::Function::New<Resize>(env, "resize"));
  return exports;
}

}  // namespace

}  // namespace facegate_resample

namespace {

// NODE_API_MODULE expects an unqualified name.
Napi::Object InitResampleBinding(Napi::Env env, Napi::Object exports) {
  return facegate_resample::Init(env, exports);
}

}  // namespace

NODE_API_MODULE(resample_binding, InitResampleBinding)
