// The errors the native addons (@facegate/faiss, jpeg, png, resample) throw into JavaScript.
//
// Each carries a stable `code` (ERR_<ADDON>_<KIND>) that the addon's TypeScript side mirrors, so
// callers branch on the kind of failure, never on a message: a misuse of the binding (a wrong
// type, a value out of range) must read differently from an input the addon declines or a
// library failure. Needs node-addon-api with C++ exceptions enabled.
#pragma once

#include <napi.h>

#include <string>

namespace facegate_native {

// One error code and the JS errors thrown with it:
//   constexpr facegate_native::ErrorCode kInvalidArgument{"ERR_PNG_INVALID_ARGUMENT"};
//   kInvalidArgument.ThrowRangeError(env, "maxPixels must be a positive integer");
class ErrorCode {
 public:
  explicit constexpr ErrorCode(const char* code) : code_(code) {}

  constexpr const char* code() const { return code_; }

  Napi::Error Attach(Napi::Error error) const {
    error.Set("code", Napi::String::New(error.Env(), code_));
    return error;
  }

  [[noreturn]] void ThrowError(Napi::Env env, const std::string& message) const {
    throw Attach(Napi::Error::New(env, message));
  }

  [[noreturn]] void ThrowTypeError(Napi::Env env, const std::string& message) const {
    throw Attach(Napi::TypeError::New(env, message));
  }

  [[noreturn]] void ThrowRangeError(Napi::Env env, const std::string& message) const {
    throw Attach(Napi::RangeError::New(env, message));
  }

  // `value` as a Uint8Array (a Buffer is one); anything else, other typed arrays included, is a
  // TypeError saying `<name> must be a Uint8Array`.
  Napi::Uint8Array RequireUint8Array(const Napi::Value& value, const char* name) const {
    if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      ThrowTypeError(value.Env(), std::string(name) + " must be a Uint8Array");
    }
    return value.As<Napi::Uint8Array>();
  }

 private:
  const char* code_;
};

}  // namespace facegate_native
