// Entry point of the resample_binding addon: argument validation and the JS <-> C++ hand-over.
//
// Every argument is checked here before any pixel is touched, and every failure becomes a JS
// TypeError / RangeError (with `code` = ERR_RESAMPLE_INVALID_ARGUMENT), so misuse from JS can
// never read or write out of bounds or abort the process.
#include <facegate/native_errors.h>
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <new>
#include <string>

#include "mad_kernels.h"
#include "raster.h"
#include "resample.h"

namespace facegate_resample {

namespace {

constexpr facegate_native::ErrorCode kInvalidArgument{"ERR_RESAMPLE_INVALID_ARGUMENT"};
// Input sides: far above any photo the service accepts, and small enough that every index the
// plan computes (positions * 128, byte offsets within a row) stays comfortably inside int.
constexpr int kMaxInputSide = 65535;
// Output sides: network inputs are a few hundred pixels; this bounds the allocation.
constexpr int kMaxOutputSide = 16384;

Napi::Object RequireObject(const Napi::Value& value, const char* name) {
  if (!value.IsObject() || value.IsArray() || value.IsFunction()) {
    kInvalidArgument.ThrowTypeError(value.Env(), std::string(name) + " must be an object");
  }
  return value.As<Napi::Object>();
}

// An integer in [minimum, maximum]; a non-number is a TypeError, anything else out of range
// (NaN, infinities, fractions) a RangeError.
int RequireInteger(const Napi::Value& value, const std::string& name, int minimum, int maximum) {
  Napi::Env env = value.Env();
  if (!value.IsNumber()) kInvalidArgument.ThrowTypeError(env, name + " must be a number");
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(number) || std::trunc(number) != number || number < minimum || number > maximum) {
    kInvalidArgument.ThrowRangeError(env, name + " must be an integer between " + std::to_string(minimum) + " and " +
                                              std::to_string(maximum) + " (got " + value.ToString().Utf8Value() + ")");
  }
  return static_cast<int>(number);
}

// A finite number in [minimum, maximum]; a non-number is a TypeError, anything else out of range
// (NaN, infinities) a RangeError.
double RequireFinite(const Napi::Value& value, const std::string& name, double minimum, double maximum) {
  Napi::Env env = value.Env();
  if (!value.IsNumber()) kInvalidArgument.ThrowTypeError(env, name + " must be a number");
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(number) || number < minimum || number > maximum) {
    kInvalidArgument.ThrowRangeError(env, name + " must be a finite number between " + std::to_string(minimum) +
                                              " and " + std::to_string(maximum) + " (got " +
                                              value.ToString().Utf8Value() + ")");
  }
  return number;
}

// The image's plain properties. Every plain property of every argument is read before the pixel
// data is checked: a getter could otherwise run JS after that check (and, say, shrink a resizable
// ArrayBuffer under it).
struct ImageArgument {
  int width;
  int height;
  Napi::Value data;
};

ImageArgument ReadImage(const Napi::Value& value) {
  const Napi::Object image = RequireObject(value, "image");
  const int width = RequireInteger(image.Get("width"), "image.width", 1, kMaxInputSide);
  const int height = RequireInteger(image.Get("height"), "image.height", 1, kMaxInputSide);
  return ImageArgument{width, height, image.Get("data")};
}

void RequireUint8Array(Napi::Env env, const Napi::Value& dataValue) {
  if (!dataValue.IsTypedArray()) kInvalidArgument.ThrowTypeError(env, "image.data must be a Uint8Array");
  const napi_typedarray_type type = dataValue.As<Napi::TypedArray>().TypedArrayType();
  if (type != napi_uint8_array && type != napi_uint8_clamped_array) {
    kInvalidArgument.ThrowTypeError(env, "image.data must be a Uint8Array");
  }
}

// A new Uint8Array over Node Buffer memory, allocated before the input pointer is taken (nothing
// after it runs JS). A Buffer is malloc'ed; a zero-filled `new Uint8Array(n)` of 230 KB (a 320x240
// letterbox) is calloc'ed above glibc's mmap threshold and took ~0.5 ms of fresh page faults on
// every call. Every byte is written, so uninitialised memory is fine.
Napi::Uint8Array NewOutput(Napi::Env env, int outWidth, int outHeight) {
  const std::size_t outBytes = static_cast<std::size_t>(outWidth) * static_cast<std::size_t>(outHeight) * 3;
  const Napi::Buffer<std::uint8_t> buffer = Napi::Buffer<std::uint8_t>::New(env, outBytes);
  return Napi::Uint8Array::New(env, outBytes, buffer.ArrayBuffer(), buffer.ByteOffset());
}

// Checked after NewOutput, when no more JS can run: the pixel data as an ImageView.
ImageView CheckedImageView(Napi::Env env, const ImageArgument& image) {
  const auto data = image.data.As<Napi::Uint8Array>();  // same memory layout for the clamped variant
  const std::uint64_t expected =
      static_cast<std::uint64_t>(image.width) * static_cast<std::uint64_t>(image.height) * 3;
  if (data.ElementLength() != expected) {
    kInvalidArgument.ThrowRangeError(env, "image.data has " + std::to_string(data.ElementLength()) +
                                              " bytes, expected width * height * 3 = " + std::to_string(expected));
  }
  return ImageView{data.Data(), image.width, image.height};
}

// Runs the resampling: a C++ failure (out of memory for the tap tables, say) becomes a JS Error.
template <typename Work>
void RunGuarded(Napi::Env env, Work work) {
  try {
    work();
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(env, "resample: out of memory");
  } catch (const std::exception& error) {
    throw Napi::Error::New(env, error.what());
  }
}

// resize(image: { width, height, data: Uint8Array }, region: { x, y, width, height },
//        outWidth, outHeight): Uint8Array of outWidth * outHeight * 3 bytes.
Napi::Value Resize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 4) kInvalidArgument.ThrowTypeError(env, "resize expects (image, region, outWidth, outHeight)");
  const ImageArgument image = ReadImage(info[0]);
  const Napi::Object regionObject = RequireObject(info[1], "region");
  const int x = RequireInteger(regionObject.Get("x"), "region.x", 0, image.width - 1);
  const int y = RequireInteger(regionObject.Get("y"), "region.y", 0, image.height - 1);
  const int regionWidth = RequireInteger(regionObject.Get("width"), "region.width", 1, image.width - x);
  const int regionHeight = RequireInteger(regionObject.Get("height"), "region.height", 1, image.height - y);
  const int outWidth = RequireInteger(info[2], "outWidth", 1, kMaxOutputSide);
  const int outHeight = RequireInteger(info[3], "outHeight", 1, kMaxOutputSide);
  RequireUint8Array(env, image.data);

  Napi::Uint8Array result = NewOutput(env, outWidth, outHeight);
  const ImageView view = CheckedImageView(env, image);
  RunGuarded(env, [&] {
    ResizeLikeLibvips(view, Region{x, y, regionWidth, regionHeight}, outWidth, outHeight, result.Data());
  });
  return result;
}

// Bounds of resizeTriangleLike's fractional rectangle: far beyond any crop of a 65535-pixel image,
// and small enough that the tap tables (about 2 * side + 3 * output side entries per axis) stay a
// few megabytes.
constexpr double kMaxRectCoordinate = 1048576;  // 2^20

// resizeTriangleLike(image, rect: { x, y, width, height } (fractional), outWidth, outHeight,
//                    options: { fill?: 0..255, antialias: boolean }): Uint8Array.
Napi::Value ResizeTriangle(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 5) {
    kInvalidArgument.ThrowTypeError(env, "resizeTriangle expects (image, rect, outWidth, outHeight, options)");
  }
  const ImageArgument image = ReadImage(info[0]);
  const Napi::Object rectObject = RequireObject(info[1], "rect");
  FloatRect rect;
  rect.x = RequireFinite(rectObject.Get("x"), "rect.x", -kMaxRectCoordinate, kMaxRectCoordinate);
  rect.y = RequireFinite(rectObject.Get("y"), "rect.y", -kMaxRectCoordinate, kMaxRectCoordinate);
  rect.width = RequireFinite(rectObject.Get("width"), "rect.width", 0, kMaxRectCoordinate);
  rect.height = RequireFinite(rectObject.Get("height"), "rect.height", 0, kMaxRectCoordinate);
  if (!(rect.width > 0)) kInvalidArgument.ThrowRangeError(env, "rect.width must be greater than 0");
  if (!(rect.height > 0)) kInvalidArgument.ThrowRangeError(env, "rect.height must be greater than 0");
  const int outWidth = RequireInteger(info[2], "outWidth", 1, kMaxOutputSide);
  const int outHeight = RequireInteger(info[3], "outHeight", 1, kMaxOutputSide);
  const Napi::Object options = RequireObject(info[4], "options");
  const Napi::Value fillValue = options.Get("fill");
  const bool hasFill = !fillValue.IsUndefined();
  const double fill = hasFill ? RequireFinite(fillValue, "options.fill", 0, 255) : 0;
  const Napi::Value antialiasValue = options.Get("antialias");
  if (!antialiasValue.IsBoolean()) kInvalidArgument.ThrowTypeError(env, "options.antialias must be a boolean");
  const bool antialias = antialiasValue.As<Napi::Boolean>().Value();
  RequireUint8Array(env, image.data);

  Napi::Uint8Array result = NewOutput(env, outWidth, outHeight);
  const ImageView view = CheckedImageView(env, image);
  RunGuarded(env, [&] { SeparableResizeLike(view, rect, outWidth, outHeight, hasFill, fill, antialias, result.Data()); });
  return result;
}

// A typed array argument of `length` elements exactly, of the given type.
template <typename Array>
Array RequireTypedArray(const Napi::Value& value, const char* name, napi_typedarray_type type, const char* typeName,
                        std::size_t length) {
  Napi::Env env = value.Env();
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != type) {
    kInvalidArgument.ThrowTypeError(env, std::string(name) + " must be a " + typeName);
  }
  const auto array = value.As<Array>();
  if (array.ElementLength() != length) {
    kInvalidArgument.ThrowRangeError(env, std::string(name) + " has " + std::to_string(array.ElementLength()) +
                                              " values, expected " + std::to_string(length));
  }
  return array;
}

Napi::Float32Array RequireFloat32Array(const Napi::Value& value, const char* name, std::size_t length) {
  return RequireTypedArray<Napi::Float32Array>(value, name, napi_float32_array, "Float32Array", length);
}

// A plain Uint8Array of `length` bytes (a mask; image data, which may also be a Uint8ClampedArray, is checked apart).
Napi::Uint8Array RequireMask(const Napi::Value& value, const char* name, std::size_t length) {
  return RequireTypedArray<Napi::Uint8Array>(value, name, napi_uint8_array, "Uint8Array", length);
}

// An affine map [a, b, tx, c, d, ty]: an array of 6 finite numbers.
void ReadAffine(const Napi::Value& value, const std::string& name, double affine[6]) {
  Napi::Env env = value.Env();
  if (!value.IsArray()) kInvalidArgument.ThrowTypeError(env, name + " must be an array of 6 numbers");
  const Napi::Array array = value.As<Napi::Array>();
  if (array.Length() != 6) kInvalidArgument.ThrowRangeError(env, name + " must have 6 elements");
  const double huge = std::numeric_limits<double>::max();
  for (std::uint32_t index = 0; index < 6; index++) {
    affine[index] = RequireFinite(array.Get(index), name + "[" + std::to_string(index) + "]", -huge, huge);
  }
}

// warpBilinear(image, affine: [a, b, tx, c, d, ty] (output -> source), outWidth, outHeight,
//              outside: 0..255 | 'replicate'): Uint8Array.
Napi::Value WarpBilinear(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 5) {
    kInvalidArgument.ThrowTypeError(env,
                                    "warpBilinear expects (image, sourceFromOutput, outWidth, outHeight, outside)");
  }
  const ImageArgument image = ReadImage(info[0]);
  double affine[6];
  ReadAffine(info[1], "sourceFromOutput", affine);
  const int outWidth = RequireInteger(info[2], "outWidth", 1, kMaxOutputSide);
  const int outHeight = RequireInteger(info[3], "outHeight", 1, kMaxOutputSide);
  bool replicate = false;
  double fill = 0;
  if (info[4].IsString()) {
    if (info[4].As<Napi::String>().Utf8Value() != "replicate") {
      kInvalidArgument.ThrowTypeError(env, "outside must be a number or 'replicate'");
    }
    replicate = true;
  } else {
    fill = RequireFinite(info[4], "outside", 0, 255);
  }
  RequireUint8Array(env, image.data);

  Napi::Uint8Array result = NewOutput(env, outWidth, outHeight);
  const ImageView view = CheckedImageView(env, image);
  RunGuarded(env, [&] { ResampleAffineLike(view, affine, outWidth, outHeight, replicate, fill, result.Data()); });
  return result;
}

// planarTensor(image, table: Float32Array(768), tensor: Float32Array,
//              placement: { width, height, offsetX, offsetY, channelPlanes: [p0, p1, p2] }): undefined.
Napi::Value PlanarTensor(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 4) {
    kInvalidArgument.ThrowTypeError(env, "planarTensor expects (image, table, tensor, placement)");
  }
  const ImageArgument image = ReadImage(info[0]);
  const Napi::Object placement = RequireObject(info[3], "placement");
  const int width = RequireInteger(placement.Get("width"), "placement.width", image.width, kMaxOutputSide);
  const int height = RequireInteger(placement.Get("height"), "placement.height", image.height, kMaxOutputSide);
  const int offsetX = RequireInteger(placement.Get("offsetX"), "placement.offsetX", 0, width - image.width);
  const int offsetY = RequireInteger(placement.Get("offsetY"), "placement.offsetY", 0, height - image.height);
  const Napi::Value planesValue = placement.Get("channelPlanes");
  if (!planesValue.IsArray() || planesValue.As<Napi::Array>().Length() != 3) {
    kInvalidArgument.ThrowTypeError(env, "placement.channelPlanes must be an array of 3 plane indices");
  }
  const Napi::Array planesArray = planesValue.As<Napi::Array>();
  int channelPlanes[3];
  bool seen[3] = {false, false, false};
  for (std::uint32_t channel = 0; channel < 3; channel++) {
    const int plane = RequireInteger(planesArray.Get(channel), "placement.channelPlanes[" + std::to_string(channel) + "]", 0, 2);
    if (seen[plane]) kInvalidArgument.ThrowRangeError(env, "placement.channelPlanes must hold each of 0, 1 and 2 once");
    seen[plane] = true;
    channelPlanes[channel] = plane;
  }
  RequireUint8Array(env, image.data);
  // No JS runs from here on: the typed arrays' lengths and memory stay as checked.
  const Napi::Float32Array table = RequireFloat32Array(info[1], "table", 768);
  Napi::Float32Array tensor = RequireFloat32Array(
      info[2], "tensor", static_cast<std::size_t>(width) * static_cast<std::size_t>(height) * 3);
  const ImageView view = CheckedImageView(env, image);
  WritePlanarTensor(view, table.Data(), tensor.Data(), width, height, offsetX, offsetY, channelPlanes);
  return env.Undefined();
}

// A plane's side: the consistency crop is 384 x 416; this bounds every index well inside int.
constexpr int kMaxPlaneSide = 16384;

// lumaChromaWarp(image, cropToSource: [a, b, tx, c, d, ty], width, height,
//                luma: Float32Array, chromaBlue: Float32Array, chromaRed: Float32Array, valid: Uint8Array): undefined.
Napi::Value LumaChromaWarp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 8) {
    kInvalidArgument.ThrowTypeError(
        env, "lumaChromaWarp expects (image, cropToSource, width, height, luma, chromaBlue, chromaRed, valid)");
  }
  const ImageArgument image = ReadImage(info[0]);
  double affine[6];
  ReadAffine(info[1], "cropToSource", affine);
  const int width = RequireInteger(info[2], "width", 1, kMaxPlaneSide);
  const int height = RequireInteger(info[3], "height", 1, kMaxPlaneSide);
  RequireUint8Array(env, image.data);
  // No JS runs from here on: the typed arrays' lengths and memory stay as checked.
  const std::size_t pixels = static_cast<std::size_t>(width) * static_cast<std::size_t>(height);
  Napi::Float32Array luma = RequireFloat32Array(info[4], "luma", pixels);
  Napi::Float32Array chromaBlue = RequireFloat32Array(info[5], "chromaBlue", pixels);
  Napi::Float32Array chromaRed = RequireFloat32Array(info[6], "chromaRed", pixels);
  Napi::Uint8Array valid = RequireMask(info[7], "valid", pixels);
  const ImageView view = CheckedImageView(env, image);
  WarpLumaChroma(view, affine, width, height,
                 LumaChromaPlanes{luma.Data(), chromaBlue.Data(), chromaRed.Data(), valid.Data()});
  return env.Undefined();
}

// boxBlur(source: Float32Array, width, height, radius, out: Float32Array): undefined.
Napi::Value BoxBlur(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 5) kInvalidArgument.ThrowTypeError(env, "boxBlur expects (source, width, height, radius, out)");
  const int width = RequireInteger(info[1], "width", 1, kMaxPlaneSide);
  const int height = RequireInteger(info[2], "height", 1, kMaxPlaneSide);
  const int radius = RequireInteger(info[3], "radius", 0, kMaxPlaneSide);
  const std::size_t pixels = static_cast<std::size_t>(width) * static_cast<std::size_t>(height);
  const Napi::Float32Array source = RequireFloat32Array(info[0], "source", pixels);
  Napi::Float32Array out = RequireFloat32Array(info[4], "out", pixels);
  if (source.ArrayBuffer() == out.ArrayBuffer()) {
    kInvalidArgument.ThrowRangeError(env, "source and out must not share memory");
  }
  RunGuarded(env, [&] { BoxBlurPlane(source.Data(), width, height, radius, out.Data()); });
  return env.Undefined();
}

// gradientAutocorrelation(smooth: Float32Array, valid: Uint8Array, width, height,
//   window: { vertical, lineFrom, lineTo, lineStep, alongFrom, alongTo, lagMax, lagStep },
//   correlation: Float64Array(lagMax + 1)): undefined.
Napi::Value GradientAutocorrelationBinding(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 6) {
    kInvalidArgument.ThrowTypeError(
        env, "gradientAutocorrelation expects (smooth, valid, width, height, window, correlation)");
  }
  const int width = RequireInteger(info[2], "width", 3, kMaxPlaneSide);
  const int height = RequireInteger(info[3], "height", 3, kMaxPlaneSide);
  const Napi::Object window = RequireObject(info[4], "window");
  const Napi::Value verticalValue = window.Get("vertical");
  if (!verticalValue.IsBoolean()) kInvalidArgument.ThrowTypeError(env, "window.vertical must be a boolean");
  const bool vertical = verticalValue.As<Napi::Boolean>().Value();
  // Lines run across the plane; positions along a line stay one pixel inside it, so that both
  // neighbours of every difference exist.
  const int lineSide = vertical ? width : height;
  const int alongSide = vertical ? height : width;
  const int lineFrom = RequireInteger(window.Get("lineFrom"), "window.lineFrom", 0, lineSide);
  const int lineTo = RequireInteger(window.Get("lineTo"), "window.lineTo", 0, lineSide);
  const int lineStep = RequireInteger(window.Get("lineStep"), "window.lineStep", 1, kMaxPlaneSide);
  const int alongFrom = RequireInteger(window.Get("alongFrom"), "window.alongFrom", 1, alongSide - 1);
  const int alongTo = RequireInteger(window.Get("alongTo"), "window.alongTo", 1, alongSide - 1);
  const int lagMax = RequireInteger(window.Get("lagMax"), "window.lagMax", 0, kMaxPlaneSide);
  const int lagStep = RequireInteger(window.Get("lagStep"), "window.lagStep", 1, kMaxPlaneSide);
  // No JS runs from here on.
  const std::size_t pixels = static_cast<std::size_t>(width) * static_cast<std::size_t>(height);
  const Napi::Float32Array smooth = RequireFloat32Array(info[0], "smooth", pixels);
  const Napi::Uint8Array valid = RequireMask(info[1], "valid", pixels);
  Napi::Float64Array correlation = RequireTypedArray<Napi::Float64Array>(
      info[5], "correlation", napi_float64_array, "Float64Array", static_cast<std::size_t>(lagMax) + 1);
  RunGuarded(env, [&] {
    GradientAutocorrelation(smooth.Data(), valid.Data(), width, height, vertical, lineFrom, lineTo, lineStep, alongFrom,
                            alongTo, lagMax, lagStep, correlation.Data());
  });
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("resize", Napi::Function::New<Resize>(env, "resize"));
  exports.Set("resizeTriangle", Napi::Function::New<ResizeTriangle>(env, "resizeTriangle"));
  exports.Set("warpBilinear", Napi::Function::New<WarpBilinear>(env, "warpBilinear"));
  exports.Set("planarTensor", Napi::Function::New<PlanarTensor>(env, "planarTensor"));
  exports.Set("lumaChromaWarp", Napi::Function::New<LumaChromaWarp>(env, "lumaChromaWarp"));
  exports.Set("boxBlur", Napi::Function::New<BoxBlur>(env, "boxBlur"));
  exports.Set("gradientAutocorrelation",
              Napi::Function::New<GradientAutocorrelationBinding>(env, "gradientAutocorrelation"));
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
