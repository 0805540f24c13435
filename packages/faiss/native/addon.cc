// Entry point of the faiss_binding addon.
#include <napi.h>

#include <faiss/Index.h>

#include <malloc.h>

#include <string>

#include "addon_data.h"
#include "arguments.h"
#include "blas.h"
#include "errors.h"
#include "index_bytes.h"
#include "index_handle.h"
#include "thread_count.h"

namespace facegate_faiss {

namespace {

Napi::Value SetThreadCount(const Napi::CallbackInfo& info) {
  SetRequestedThreadCount(RequireThreadCount(info[0]));
  return info.Env().Undefined();
}

Napi::Value GetThreadCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), CurrentThreadCount());
}

Napi::Value GetBlasSettings(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const BlasSettings settings = CurrentBlasSettings();
  Napi::Object result = Napi::Object::New(env);
  result.Set("threshold", Napi::Number::New(env, settings.threshold));
  result.Set("queryBlockSize", Napi::Number::New(env, settings.queryBlockSize));
  result.Set("databaseBlockSize", Napi::Number::New(env, settings.databaseBlockSize));
  result.Set("implementation", Napi::String::New(env, BlasImplementation()));
  const int threads = OpenBlasThreadCount();
  result.Set("threads", threads < 0 ? env.Null() : Napi::Number::New(env, threads));
  return result;
}

// Reads an optional integer field in [minimum, maximum]; keeps `current` when absent.
int OptionalInteger(const Napi::Object& object, const char* name, int current, int minimum, int maximum) {
  Napi::Env env = object.Env();
  const Napi::Value value = object.Get(name);
  if (value.IsUndefined()) return current;
  if (!value.IsNumber()) kInvalidArgument.ThrowTypeError(env, std::string(name) + " must be a number");
  const double number = value.As<Napi::Number>().DoubleValue();
  if (!(number >= minimum && number <= maximum) || number != static_cast<double>(static_cast<int>(number))) {
    kInvalidArgument.ThrowRangeError(env, std::string(name) + " must be an integer between " + std::to_string(minimum) +
                                              " and " + std::to_string(maximum));
  }
  return static_cast<int>(number);
}

Napi::Value SetBlasSettings(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || info[0].IsArray()) kInvalidArgument.ThrowTypeError(env, "BLAS settings must be an object");
  const Napi::Object object = info[0].As<Napi::Object>();
  // Validate everything before changing anything.
  BlasSettings settings = CurrentBlasSettings();
  settings.threshold = OptionalInteger(object, "threshold", settings.threshold, 0, 1 << 30);
  settings.queryBlockSize = OptionalInteger(object, "queryBlockSize", settings.queryBlockSize, 1, 1 << 20);
  settings.databaseBlockSize = OptionalInteger(object, "databaseBlockSize", settings.databaseBlockSize, 1, 1 << 20);
  const int threads = OptionalInteger(object, "threads", 0, 1, 1024);
  ApplyBlasSettings(settings);
  if (threads > 0) SetOpenBlasThreadCount(threads);
  return env.Undefined();
}

// glibc keeps what is freed inside its heaps for later allocations, and gives back only the top of each. Building a
// shard's index from the store frees many batch-sized buffers between live allocations: after rebuilding 250k
// templates, a fifth of the process's resident memory was such freed space. malloc_trim hands those pages back.
Napi::Value ReleaseFreedMemory(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), malloc_trim(0) == 1);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  exports.Set("NativeIndex", IndexHandle::DefineClass(env));
  exports.Set("IndexBytes", IndexBytes::DefineClass(env));
  exports.Set("setThreadCount", Napi::Function::New<SetThreadCount>(env, "setThreadCount"));
  exports.Set("getThreadCount", Napi::Function::New<GetThreadCount>(env, "getThreadCount"));
  exports.Set("getBlasSettings", Napi::Function::New<GetBlasSettings>(env, "getBlasSettings"));
  exports.Set("releaseFreedMemory", Napi::Function::New<ReleaseFreedMemory>(env, "releaseFreedMemory"));
  exports.Set("setBlasSettings", Napi::Function::New<SetBlasSettings>(env, "setBlasSettings"));
  // The version of the headers compiled against; Debian ships a static
  // libfaiss, so it is also the version linked in.
  exports.Set("faissVersion",
              Napi::String::New(env, std::to_string(FAISS_VERSION_MAJOR) + "." +
                                         std::to_string(FAISS_VERSION_MINOR) + "." +
                                         std::to_string(FAISS_VERSION_PATCH)));
  return exports;
}

}  // namespace

}  // namespace facegate_faiss

namespace {

// NODE_API_MODULE pastes its argument into an identifier, so it needs an
// unqualified name.
Napi::Object InitFaissBinding(Napi::Env env, Napi::Object exports) {
  return facegate_faiss::Init(env, exports);
}

}  // namespace

NODE_API_MODULE(faiss_binding, InitFaissBinding)
