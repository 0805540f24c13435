// Turning argument problems and faiss failures into JS errors.
//
// Every JS-visible error carries a stable `code` so callers can branch on the
// kind of failure without parsing faiss's (long, version-specific) messages.
#pragma once

#include <facegate/native_errors.h>
#include <napi.h>

#include <exception>
#include <string>
#include <utility>

#include <faiss/impl/FaissException.h>

namespace facegate_faiss {

// Codes surfaced as `error.code` on the JS side; mirrored in src/index.ts.
inline constexpr facegate_native::ErrorCode kInvalidArgument{"ERR_FAISS_INVALID_ARGUMENT"};
inline constexpr facegate_native::ErrorCode kInvalidState{"ERR_FAISS_INVALID_STATE"};
inline constexpr facegate_native::ErrorCode kDisposed{"ERR_FAISS_DISPOSED"};
inline constexpr facegate_native::ErrorCode kNotFound{"ERR_FAISS_NOT_FOUND"};
inline constexpr facegate_native::ErrorCode kFaissFailure{"ERR_FAISS_FAILURE"};

// The text of a caught exception, prefixed with the operation that failed so
// the JS stack trace is not the only clue to where it happened.
inline std::string DescribeFailure(const char* operation, const std::exception& error) {
  return std::string(operation) + " failed: " + error.what();
}

// Runs `call` (which calls into faiss) and converts anything it throws into a
// JS Error. faiss signals misuse with FaissException, allocation failures with
// std::bad_alloc, and malformed files with assorted std exceptions; none of
// them may escape into N-API as a C++ exception.
template <typename Call>
auto CallFaiss(Napi::Env env, const char* operation, Call&& call) -> decltype(call()) {
  try {
    return std::forward<Call>(call)();
  } catch (const faiss::FaissException& error) {
    kFaissFailure.ThrowError(env, DescribeFailure(operation, error));
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& error) {
    kFaissFailure.ThrowError(env, DescribeFailure(operation, error));
  }
}

}  // namespace facegate_faiss
