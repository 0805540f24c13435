// Entry point of the faiss_binding addon.
#include <napi.h>

#include <faiss/Index.h>

#include <string>

#include "arguments.h"
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

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeIndex", IndexHandle::DefineClass(env));
  exports.Set("setThreadCount", Napi::Function::New<SetThreadCount>(env, "setThreadCount"));
  exports.Set("getThreadCount", Napi::Function::New<GetThreadCount>(env, "getThreadCount"));
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
