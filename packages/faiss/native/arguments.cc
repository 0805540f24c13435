#include "arguments.h"

#include <cmath>
#include <limits>

#include "errors.h"

namespace facegate_faiss {

namespace {

bool IsWholeNumber(double value) {
  return std::isfinite(value) && std::trunc(value) == value;
}

}  // namespace

int RequireDimension(const Napi::Value& value) {
  if (!value.IsNumber()) kInvalidArgument.ThrowTypeError(value.Env(), "dimension must be a number");
  const double dimension = value.As<Napi::Number>().DoubleValue();
  if (!IsWholeNumber(dimension) || dimension < 1 || dimension > kMaxDimension) {
    kInvalidArgument.ThrowRangeError(value.Env(),
                                     "dimension must be an integer between 1 and " + std::to_string(kMaxDimension));
  }
  return static_cast<int>(dimension);
}

std::string RequireString(const Napi::Value& value, const char* name) {
  if (!value.IsString()) kInvalidArgument.ThrowTypeError(value.Env(), std::string(name) + " must be a string");
  std::string text = value.As<Napi::String>().Utf8Value();
  if (text.empty()) kInvalidArgument.ThrowRangeError(value.Env(), std::string(name) + " must not be empty");
  // faiss takes C strings; an embedded NUL would silently truncate the value.
  if (text.find('\0') != std::string::npos) {
    kInvalidArgument.ThrowRangeError(value.Env(), std::string(name) + " must not contain NUL characters");
  }
  return text;
}

std::string RequirePath(const Napi::Value& value) { return RequireString(value, "path"); }

VectorBatch RequireVectors(const Napi::Value& value, int dimension, const char* name) {
  Napi::Env env = value.Env();
  if (!value.IsTypedArray() ||
      value.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    kInvalidArgument.ThrowTypeError(env, std::string(name) + " must be a Float32Array");
  }
  auto array = value.As<Napi::Float32Array>();
  const std::size_t length = array.ElementLength();
  if (length % static_cast<std::size_t>(dimension) != 0) {
    kInvalidArgument.ThrowRangeError(env, std::string(name) + " length " + std::to_string(length) +
                                              " is not a multiple of the index dimension " + std::to_string(dimension));
  }
  const float* data = array.Data();
  for (std::size_t i = 0; i < length; ++i) {
    if (!std::isfinite(data[i])) {
      kInvalidArgument.ThrowRangeError(
          env, std::string(name) + " contains a non-finite value at element " + std::to_string(i));
    }
  }
  return VectorBatch{data, length / static_cast<std::size_t>(dimension)};
}

IdBatch RequireIds(const Napi::Value& value, const char* name) {
  Napi::Env env = value.Env();
  if (!value.IsTypedArray() ||
      value.As<Napi::TypedArray>().TypedArrayType() != napi_bigint64_array) {
    kInvalidArgument.ThrowTypeError(env, std::string(name) + " must be a BigInt64Array");
  }
  auto array = value.As<Napi::TypedArrayOf<int64_t>>();
  const int64_t* data = array.Data();
  const std::size_t count = array.ElementLength();
  for (std::size_t i = 0; i < count; ++i) {
    if (data[i] < 0) {
      kInvalidArgument.ThrowRangeError(env, std::string(name) + " must be non-negative (faiss reserves -1); got " +
                                                std::to_string(data[i]) + " at position " + std::to_string(i));
    }
  }
  return IdBatch{data, count};
}

int64_t RequireNonNegativeBigIntId(const Napi::Value& value, const char* name) {
  Napi::Env env = value.Env();
  if (!value.IsBigInt()) kInvalidArgument.ThrowTypeError(env, std::string(name) + " must be a bigint");
  bool lossless = false;
  const int64_t id = value.As<Napi::BigInt>().Int64Value(&lossless);
  if (!lossless || id < 0) {
    kInvalidArgument.ThrowRangeError(env, std::string(name) + " must be between 0 and 2^63-1");
  }
  return id;
}

int64_t RequireNeighbourCount(const Napi::Value& value, std::size_t queryCount) {
  Napi::Env env = value.Env();
  if (!value.IsNumber()) kInvalidArgument.ThrowTypeError(env, "k must be a number");
  const double k = value.As<Napi::Number>().DoubleValue();
  if (!IsWholeNumber(k) || k < 1 || k > static_cast<double>(kMaxResultSlots)) {
    kInvalidArgument.ThrowRangeError(env, "k must be a positive integer");
  }
  const auto neighbours = static_cast<std::size_t>(k);
  if (queryCount > 0 && neighbours > kMaxResultSlots / queryCount) {
    kInvalidArgument.ThrowRangeError(
        env, "queries x k exceeds " + std::to_string(kMaxResultSlots) + " result slots; search in smaller batches");
  }
  return static_cast<int64_t>(neighbours);
}

int RequireThreadCount(const Napi::Value& value) {
  Napi::Env env = value.Env();
  if (!value.IsNumber()) kInvalidArgument.ThrowTypeError(env, "thread count must be a number");
  const double count = value.As<Napi::Number>().DoubleValue();
  if (!IsWholeNumber(count) || count < 1 || count > 1024) {
    kInvalidArgument.ThrowRangeError(env, "thread count must be an integer between 1 and 1024");
  }
  return static_cast<int>(count);
}

std::size_t RequireCount(const Napi::Value& value, const char* name) {
  constexpr double kMaxCount = 1099511627776.0;  // 2^40
  Napi::Env env = value.Env();
  if (!value.IsNumber()) kInvalidArgument.ThrowTypeError(env, std::string(name) + " must be a number");
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!(number >= 0 && number <= kMaxCount) || std::floor(number) != number) {
    kInvalidArgument.ThrowRangeError(env, std::string(name) + " must be an integer between 0 and 2^40");
  }
  return static_cast<std::size_t>(number);
}

}  // namespace facegate_faiss
