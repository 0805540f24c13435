// The JS-visible wrapper around one faiss::Index (exported as NativeIndex and
// wrapped again by the typed FaissIndex class in src/index.ts).
#pragma once

#include <napi.h>

#include <memory>

#include <faiss/Index.h>

#include "search_gate.h"

namespace facegate_faiss {

class IndexHandle : public Napi::ObjectWrap<IndexHandle> {
 public:
  static Napi::Function DefineClass(Napi::Env env);

  // Only reachable through the static factories, which pass the index as an
  // External; `new NativeIndex()` from JS is rejected.
  explicit IndexHandle(const Napi::CallbackInfo& info);

 private:
  static Napi::Value Create(const Napi::CallbackInfo& info);
  static Napi::Value Read(const Napi::CallbackInfo& info);
  static Napi::Value Deserialize(const Napi::CallbackInfo& info);
  static Napi::Value DeserializeBytes(const Napi::CallbackInfo& info);
  static Napi::Value Adopt(Napi::Env env, std::unique_ptr<faiss::Index> index);

  Napi::Value Dimension(const Napi::CallbackInfo& info);
  Napi::Value Count(const Napi::CallbackInfo& info);
  Napi::Value IsTrained(const Napi::CallbackInfo& info);
  Napi::Value Metric(const Napi::CallbackInfo& info);
  Napi::Value IsDisposed(const Napi::CallbackInfo& info);
  Napi::Value HasSimdHnswStorage(const Napi::CallbackInfo& info);

  void Train(const Napi::CallbackInfo& info);
  void Add(const Napi::CallbackInfo& info);
  void AddWithIds(const Napi::CallbackInfo& info);
  Napi::Value Search(const Napi::CallbackInfo& info);
  Napi::Value SearchAsync(const Napi::CallbackInfo& info);
  Napi::Value RemoveIds(const Napi::CallbackInfo& info);
  Napi::Value Reconstruct(const Napi::CallbackInfo& info);
  void SetParameter(const Napi::CallbackInfo& info);
  void EnableDirectMap(const Napi::CallbackInfo& info);
  void Write(const Napi::CallbackInfo& info);
  Napi::Value Serialize(const Napi::CallbackInfo& info);
  Napi::Value SerializeToBytes(const Napi::CallbackInfo& info);
  void Reset(const Napi::CallbackInfo& info);
  void Dispose(const Napi::CallbackInfo& info);

  // The index, or a JS error when dispose() has already freed it.
  faiss::Index& LiveIndex(Napi::Env env);

  // Every call that changes the index goes through here after validating its
  // arguments: it blocks until async searches started earlier are done.
  void WaitForSearches() { searches_.WaitUntilIdle(); }

  std::unique_ptr<faiss::Index> index_;
  SearchGate searches_;
};

}  // namespace facegate_faiss
