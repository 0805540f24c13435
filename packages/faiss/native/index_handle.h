// The JS-visible wrapper around one faiss::Index (exported as NativeIndex and
// wrapped again by the typed FaissIndex class in src/index.ts).
#pragma once

#include <napi.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include <faiss/Index.h>

#include "arguments.h"
#include "search_gate.h"

namespace facegate_faiss {

class IndexHandle : public Napi::ObjectWrap<IndexHandle> {
 public:
  static Napi::Function DefineClass(Napi::Env env);

  // Only reachable through the static factories, which pass the index as an
  // External; `new NativeIndex()` from JS is rejected.
  explicit IndexHandle(const Napi::CallbackInfo& info);

  // For the worker of trainAsync()/addWithIdsAsync(): its ticket, and the end of the change it ran.
  SearchGate& Searches() { return searches_; }
  void EndAsyncChange() { changingAsync_ = false; }
  // For reserveAsync()'s worker: the gate its copy of the codes holds, and the count of changes other than appends
  // that fit, which tells whether the codes it copied are still where they were.
  SearchGate& Copies() { return copies_; }
  uint64_t Changes() const { return changes_; }
  // Back on the JS thread: takes `fresh` as the next flat-codes storage, its first `copied` bytes already copied (all of
  // them copied again if anything but appends changed the index since `changesAtCopy`). Swapped in at once when no
  // async search or serialisation is reading the codes, else before the next change (AdoptPrepared), so the JS thread
  // never waits for one here. False when the index is gone, being changed, or no longer needs it.
  bool OfferStorage(std::vector<uint8_t> fresh, std::size_t copied, uint64_t changesAtCopy);
  // A new NativeIndex owning `index` (for deserializeBytesAsync()'s worker too); throws a JS error for a metric it does
  // not support.
  static Napi::Value Adopt(Napi::Env env, std::unique_ptr<faiss::Index> index);

 private:
  static Napi::Value Create(const Napi::CallbackInfo& info);
  static Napi::Value Read(const Napi::CallbackInfo& info);
  static Napi::Value Deserialize(const Napi::CallbackInfo& info);
  static Napi::Value DeserializeBytes(const Napi::CallbackInfo& info);
  static Napi::Value DeserializeBytesAsync(const Napi::CallbackInfo& info);
  // An index read from `size` serialised bytes at `data` (faiss reads them in place).
  static Napi::Value AdoptSerialized(Napi::Env env, const uint8_t* data, std::size_t size);

  Napi::Value Dimension(const Napi::CallbackInfo& info);
  Napi::Value Count(const Napi::CallbackInfo& info);
  Napi::Value IsTrained(const Napi::CallbackInfo& info);
  Napi::Value Metric(const Napi::CallbackInfo& info);
  Napi::Value IsDisposed(const Napi::CallbackInfo& info);
  Napi::Value HasSimdHnswStorage(const Napi::CallbackInfo& info);
  Napi::Value SpareCapacity(const Napi::CallbackInfo& info);
  Napi::Value ReserveAsync(const Napi::CallbackInfo& info);
  Napi::Value AdoptReserved(const Napi::CallbackInfo& info);

  void Train(const Napi::CallbackInfo& info);
  Napi::Value TrainAsync(const Napi::CallbackInfo& info);
  void Add(const Napi::CallbackInfo& info);
  void AddWithIds(const Napi::CallbackInfo& info);
  Napi::Value AddWithIdsAsync(const Napi::CallbackInfo& info);
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

  // The index, or a JS error when dispose() has already freed it or an async change is running on it.
  faiss::Index& LiveIndex(Napi::Env env);

  // The checked arguments of train() and addWithIds() (and their async forms); valid for the synchronous call.
  static VectorBatch TrainingVectors(Napi::Env env, const faiss::Index& index, const Napi::Value& value);
  static std::pair<VectorBatch, IdBatch> VectorsWithIds(Napi::Env env, const faiss::Index& index,
                                                        const Napi::CallbackInfo& info);
  // Runs `change` on a libuv worker thread; the promise settles when it is done.
  Napi::Value ChangeAsync(const Napi::CallbackInfo& info, const char* operation, std::function<void()> change);

  // Every call that changes the index goes through here after validating its arguments: it blocks until async
  // searches started earlier are done, and a copy of the codes for reserveAsync() too.
  void BeginChange() {
    searches_.WaitUntilIdle();
    AdoptPrepared();
    copies_.WaitUntilIdle();
    ++changes_;
  }
  // Swaps in the storage OfferStorage() kept, once nothing reads the codes (searches idle); true when it did.
  bool AdoptPrepared();
  // The capacity, in bytes, of the storage an append would find: the prepared one where there is one.
  std::size_t CodesCapacity(const std::vector<uint8_t>& codes) const {
    return std::max(codes.capacity(), prepared_.codes.capacity());
  }
  // What add() and addWithIds() go through instead: an append that fits the flat-codes storage moves nothing a copy
  // reads, so it waits only for searches.
  void WaitBeforeAppend(faiss::Index& index, std::size_t count);

  std::unique_ptr<faiss::Index> index_;
  SearchGate searches_;
  SearchGate copies_;
  uint64_t changes_ = 0;
  // Storage reserveAsync() filled while searches were reading the old one (capacity 0: none).
  struct PreparedStorage {
    std::vector<uint8_t> codes;
    std::size_t copied = 0;
    uint64_t changesAtCopy = 0;
  } prepared_;
  // True from trainAsync()/addWithIdsAsync() until its promise settles: every other call is refused meanwhile.
  bool changingAsync_ = false;
};

}  // namespace facegate_faiss
