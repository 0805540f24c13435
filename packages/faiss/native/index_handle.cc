#include "index_handle.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <climits>
#include <cstring>
#include <functional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include <faiss/AutoTune.h>
#include <faiss/IndexIDMap.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/impl/io.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>

#include "addon_data.h"
#include "arguments.h"
#include "errors.h"
#include "index_bytes.h"
#include "index_traits.h"
#include "simd_flat.h"
#include "thread_count.h"

namespace facegate_faiss {

namespace {

const char* MetricName(faiss::MetricType metric) {
  switch (metric) {
    case faiss::METRIC_INNER_PRODUCT:
      return "inner_product";
    case faiss::METRIC_L2:
      return "l2";
    default:
      return nullptr;
  }
}

faiss::MetricType RequireMetric(const Napi::Value& value) {
  // Inner product is the default because facegate compares L2-normalised
  // embeddings by cosine similarity.
  if (value.IsUndefined()) return faiss::METRIC_INNER_PRODUCT;
  if (!value.IsString()) kInvalidArgument.ThrowTypeError(value.Env(), "metric must be 'inner_product' or 'l2'");
  const std::string name = value.As<Napi::String>().Utf8Value();
  if (name == "inner_product") return faiss::METRIC_INNER_PRODUCT;
  if (name == "l2") return faiss::METRIC_L2;
  kInvalidArgument.ThrowRangeError(value.Env(), "metric must be 'inner_product' or 'l2', got '" + name + "'");
}

void RequireTrained(Napi::Env env, const faiss::Index& index, const char* operation) {
  if (!index.is_trained) {
    kInvalidState.ThrowError(env, std::string(operation) + "() needs a trained index; call train() first");
  }
}

Napi::Object SearchResult(Napi::Env env, Napi::Float32Array distances,
                          Napi::TypedArrayOf<int64_t> labels) {
  Napi::Object result = Napi::Object::New(env);
  result.Set("distances", distances);
  result.Set("labels", labels);
  return result;
}

// Searching an empty index answers "no neighbours" without calling faiss: with
// OpenBLAS and distance_compute_blas_threshold <= nq, faiss 1.7.3's
// inner-product BLAS path hands sgemm an empty matrix and crashes (SIGSEGV).
bool AnswerEmptySearch(const faiss::Index& index, std::size_t slots, float* distances, int64_t* labels) {
  if (index.ntotal > 0) return false;
  const float sentinel = index.metric_type == faiss::METRIC_INNER_PRODUCT ? -FLT_MAX : FLT_MAX;
  std::fill(distances, distances + slots, sentinel);
  std::fill(labels, labels + slots, int64_t{-1});
  return true;
}

Napi::TypedArrayOf<int64_t> NewBigInt64Array(Napi::Env env, std::size_t length) {
  return Napi::TypedArrayOf<int64_t>::New(env, length, napi_bigint64_array);
}

// faiss keeps whichever copy of a duplicated id it sees last in its reverse
// maps but both rows in storage, so a duplicate would make search return one
// face twice and removeIds delete both. Rejected here instead.
void RejectDuplicateIds(Napi::Env env, const faiss::Index& index, IdBatch ids) {
  std::unordered_set<int64_t> batch;
  batch.reserve(ids.count);
  for (std::size_t i = 0; i < ids.count; ++i) {
    if (!batch.insert(ids.data[i]).second) {
      kInvalidArgument.ThrowRangeError(env, "ids contains " + std::to_string(ids.data[i]) + " more than once");
    }
  }
  if (ClassifyIds(index) == IdScheme::IdMap) {
    // No reverse map to consult, so scan the forward map once.
    const auto& idMap = dynamic_cast<const faiss::IndexIDMap&>(index).id_map;
    for (const int64_t stored : idMap) {
      if (batch.count(stored) != 0) {
        kInvalidArgument.ThrowRangeError(env, "id " + std::to_string(stored) + " is already in the index");
      }
    }
    return;
  }
  for (std::size_t i = 0; i < ids.count; ++i) {
    if (LookUpId(index, ids.data[i]) == IdPresence::Present) {
      kInvalidArgument.ThrowRangeError(env, "id " + std::to_string(ids.data[i]) + " is already in the index");
    }
  }
}

// Work on a libuv worker thread, settling one promise: what the work throws rejects it with ERR_FAISS_FAILURE.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  PromiseWorker(Napi::Env env, const char* resourceName)
      : Napi::AsyncWorker(env, resourceName), deferred_(Napi::Promise::Deferred::New(env)) {}

  // Runs `work` (which calls into faiss) with the thread count asked for, turning what it throws into the promise's
  // rejection, then calls WorkDone().
  template <typename Work>
  void RunFaiss(const char* operation, Work&& work) {
    ApplyRequestedThreadCount();
    try {
      std::forward<Work>(work)();
    } catch (const std::exception& error) {
      SetError(DescribeFailure(operation, error));
    }
    WorkDone();
  }

  virtual void WorkDone() {}

  void OnError(const Napi::Error& error) override { deferred_.Reject(kFaissFailure.Attach(error).Value()); }

  Napi::Promise::Deferred deferred_;
};

// Work on one index. Keeps the index's JS object (and with it the IndexHandle) from being collected while the worker
// points into it, and holds a ticket of `gate` until the work is done, so that what waits for that gate waits for it.
class IndexWorker : public PromiseWorker {
 protected:
  IndexWorker(Napi::Object owner, SearchGate& gate, const char* resourceName)
      : PromiseWorker(owner.Env(), resourceName), owner_(Napi::Persistent(owner)), ticket_(gate) {}

  void WorkDone() override { ticket_.Release(); }

 private:
  Napi::ObjectReference owner_;
  SearchTicket ticket_;
};

// Runs one search so the JS thread stays free. Queries are copied because the caller may reuse its Float32Array as
// soon as searchAsync() returns.
class SearchWorker : public IndexWorker {
 public:
  SearchWorker(Napi::Object owner, const faiss::Index& index, SearchGate& gate,
               std::vector<float> queries, int64_t queryCount, int64_t k)
      : IndexWorker(owner, gate, "facegate:faiss.searchAsync"),
        index_(index),
        queries_(std::move(queries)),
        queryCount_(queryCount),
        k_(k) {}

 protected:
  void Execute() override {
    RunFaiss("searchAsync", [this] {
      const auto slots = static_cast<std::size_t>(queryCount_ * k_);
      distances_.resize(slots);
      labels_.resize(slots);
      if (queryCount_ > 0 && !AnswerEmptySearch(index_, slots, distances_.data(), labels_.data())) {
        index_.search(queryCount_, queries_.data(), k_, distances_.data(), labels_.data());
      }
    });
  }

  void OnOK() override {
    Napi::Env env = Env();
    auto distances = Napi::Float32Array::New(env, distances_.size());
    auto labels = NewBigInt64Array(env, labels_.size());
    std::memcpy(distances.Data(), distances_.data(), distances_.size() * sizeof(float));
    std::memcpy(labels.Data(), labels_.data(), labels_.size() * sizeof(int64_t));
    deferred_.Resolve(SearchResult(env, distances, labels));
  }

 private:
  const faiss::Index& index_;
  std::vector<float> queries_;
  int64_t queryCount_;
  int64_t k_;
  std::vector<float> distances_;
  std::vector<faiss::Index::idx_t> labels_;
};

// Counts what faiss::write_index would write, so that the real write lands in one allocation of the right size.
struct CountingIOWriter : faiss::IOWriter {
  std::size_t operator()(const void*, std::size_t itemSize, std::size_t items) override {
    bytes += itemSize * items;
    return items;
  }
  std::size_t bytes = 0;
};

// serializeToBytes(): a shard of 250k 512-d templates takes ~0.5 s to serialise, which on the JS thread stalled every
// request at each snapshot.
class SerializeWorker : public IndexWorker {
 public:
  SerializeWorker(Napi::Object owner, const faiss::Index& index, SearchGate& gate)
      : IndexWorker(owner, gate, "facegate:faiss.serializeToBytes"), index_(index) {}

 protected:
  void Execute() override {
    RunFaiss("serializeToBytes", [this] {
      CountingIOWriter counter;
      faiss::write_index(&index_, &counter);
      data_.reserve(counter.bytes);
      BufferIOWriter writer(data_);
      faiss::write_index(&index_, &writer);
    });
  }

  void OnOK() override { deferred_.Resolve(IndexBytes::Adopt(Env(), std::move(data_))); }

 private:
  const faiss::Index& index_;
  ByteBuffer data_;
};

// trainAsync() or addWithIdsAsync(): adding 4,096 templates to an HNSW graph of 16k took 0.9–2.7 s, which a shard
// rebuilding its index ran on the JS thread. The handle refuses every other call until the promise has settled.
class ChangeWorker : public IndexWorker {
 public:
  ChangeWorker(Napi::Object owner, IndexHandle& handle, const char* operation, std::function<void()> change)
      : IndexWorker(owner, handle.Searches(), "facegate:faiss.changeAsync"),
        handle_(handle),
        operation_(operation),
        change_(std::move(change)) {}

 protected:
  void Execute() override { RunFaiss(operation_, change_); }

  void OnOK() override {
    handle_.EndAsyncChange();
    deferred_.Resolve(Env().Undefined());
  }

  void OnError(const Napi::Error& error) override {
    handle_.EndAsyncChange();
    IndexWorker::OnError(error);
  }

 private:
  IndexHandle& handle_;
  const char* operation_;
  std::function<void()> change_;
};

// deserializeBytesAsync(): reading back a shard of 250k 512-d templates held the JS thread ~0.3 s, and a gallery's
// shards opened together held it for seconds: nothing else, health checks or a worker's queue heartbeats, ran
// meanwhile. The bytes are the worker's own (moved out of their IndexBytes), freed as soon as faiss has read them.
class DeserializeWorker : public PromiseWorker {
 public:
  DeserializeWorker(Napi::Env env, ByteBuffer bytes)
      : PromiseWorker(env, "facegate:faiss.deserializeBytesAsync"), bytes_(std::move(bytes)) {}

 protected:
  void Execute() override {
    RunFaiss("deserializeBytesAsync", [this] {
      SpanIOReader reader(bytes_.data(), bytes_.size());
      index_.reset(faiss::read_index(&reader));
      // Here rather than in Adopt on the JS thread: it copies an HNSW graph's vectors.
      UseSimdHnswStorage(*index_);
    });
  }

  void WorkDone() override { ByteBuffer().swap(bytes_); }

  void OnOK() override {
    try {
      deferred_.Resolve(IndexHandle::Adopt(Env(), std::move(index_)));
    } catch (const Napi::Error& error) {
      deferred_.Reject(error.Value());
    }
  }

 private:
  ByteBuffer bytes_;
  std::unique_ptr<faiss::Index> index_;
};

// reserveAsync(): a flat index's codes live in one std::vector, which doubles when an add outgrows it. On these VMs,
// where each 4 KiB page costs ~10 us to fault in, the first enrolment into a shard of 62.5k templates opened from a
// snapshot (its vector exactly full) held the JS thread 330-460 ms, and a shard four times as large four times as
// long. Here the larger vector is allocated and filled with the codes stored so far on a libuv thread (the room beyond
// them left unfaulted); back on the JS thread only the codes appended meanwhile are copied before it is swapped in
// (OfferStorage), at once where no async search is reading the old storage, else before the next change: a swap that
// waited for such a search held the JS thread for that search. It holds a ticket of the copies gate: appends that fit
// go on meanwhile, every other change waits for the copy, and any such change sends the swap back to a full copy.
class ReserveWorker : public IndexWorker {
 public:
  ReserveWorker(Napi::Object owner, IndexHandle& handle, const faiss::IndexFlatCodes& flat, std::size_t bytes)
      : IndexWorker(owner, handle.Copies(), "facegate:faiss.reserveAsync"),
        handle_(handle),
        bytes_(bytes),
        source_(flat.codes.data()),
        copied_(flat.codes.size()),
        changesAtStart_(handle.Changes()) {}

 protected:
  void Execute() override {
    RunFaiss("reserveAsync", [this] {
      // Huge pages fault in a 512th as often, and copies miss the TLB as rarely. Only the codes are written: the room
      // beyond stays unfaulted, and unresident, until adds fill it, as a vector's own doubling leaves it.
      fresh_.reserve(bytes_);
      AdviseHugePages(fresh_.data(), fresh_.capacity());
      fresh_.assign(source_, source_ + copied_);
    });
  }

  void OnOK() override {
    const bool ready = handle_.OfferStorage(std::move(fresh_), copied_, changesAtStart_);
    deferred_.Resolve(Napi::Boolean::New(Env(), ready));
  }

 private:
  IndexHandle& handle_;
  std::size_t bytes_;
  const uint8_t* source_;
  std::size_t copied_;
  uint64_t changesAtStart_;
  std::vector<uint8_t> fresh_;
};

}  // namespace

Napi::Function IndexHandle::DefineClass(Napi::Env env) {
  Napi::Function constructor = ObjectWrap<IndexHandle>::DefineClass(
      env, "NativeIndex",
      {
          StaticMethod<&IndexHandle::Create>("create"),
          StaticMethod<&IndexHandle::Read>("read"),
          StaticMethod<&IndexHandle::Deserialize>("deserialize"),
          StaticMethod<&IndexHandle::DeserializeBytes>("deserializeBytes"),
          StaticMethod<&IndexHandle::DeserializeBytesAsync>("deserializeBytesAsync"),
          InstanceAccessor<&IndexHandle::Dimension>("dimension"),
          InstanceAccessor<&IndexHandle::Count>("ntotal"),
          InstanceAccessor<&IndexHandle::IsTrained>("isTrained"),
          InstanceAccessor<&IndexHandle::Metric>("metric"),
          InstanceAccessor<&IndexHandle::IsDisposed>("isDisposed"),
          InstanceAccessor<&IndexHandle::HasSimdHnswStorage>("simdHnswStorage"),
          InstanceAccessor<&IndexHandle::SpareCapacity>("spareCapacity"),
          InstanceMethod<&IndexHandle::ReserveAsync>("reserveAsync"),
          InstanceMethod<&IndexHandle::AdoptReserved>("adoptReserved"),
          InstanceMethod<&IndexHandle::Train>("train"),
          InstanceMethod<&IndexHandle::TrainAsync>("trainAsync"),
          InstanceMethod<&IndexHandle::Add>("add"),
          InstanceMethod<&IndexHandle::AddWithIds>("addWithIds"),
          InstanceMethod<&IndexHandle::AddWithIdsAsync>("addWithIdsAsync"),
          InstanceMethod<&IndexHandle::Search>("search"),
          InstanceMethod<&IndexHandle::SearchAsync>("searchAsync"),
          InstanceMethod<&IndexHandle::RemoveIds>("removeIds"),
          InstanceMethod<&IndexHandle::Reconstruct>("reconstruct"),
          InstanceMethod<&IndexHandle::SetParameter>("setParameter"),
          InstanceMethod<&IndexHandle::EnableDirectMap>("enableDirectMap"),
          InstanceMethod<&IndexHandle::Write>("write"),
          InstanceMethod<&IndexHandle::Serialize>("serialize"),
          InstanceMethod<&IndexHandle::SerializeToBytes>("serializeToBytes"),
          InstanceMethod<&IndexHandle::Reset>("reset"),
          InstanceMethod<&IndexHandle::Dispose>("dispose"),
      });
  GetAddonData(env).indexConstructor = Napi::Persistent(constructor);
  return constructor;
}

IndexHandle::IndexHandle(const Napi::CallbackInfo& info) : ObjectWrap<IndexHandle>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    kInvalidArgument.ThrowTypeError(
        info.Env(), "NativeIndex cannot be constructed directly; use create(), read() or deserialize()");
  }
  index_ = std::move(*info[0].As<Napi::External<std::unique_ptr<faiss::Index>>>().Data());
}

Napi::Value IndexHandle::Adopt(Napi::Env env, std::unique_ptr<faiss::Index> index) {
  if (MetricName(index->metric_type) == nullptr) {
    kInvalidState.ThrowError(env, "only inner_product and l2 indexes are supported, this one uses faiss metric " +
                                      std::to_string(static_cast<int>(index->metric_type)));
  }
  // The constructor moves out of `index`; if construction fails first, the
  // unique_ptr here still owns the index and frees it.
  // Every way in (create, read, deserialize) gets the vectorised HNSW distances.
  UseSimdHnswStorage(*index);
  return GetAddonData(env).indexConstructor.New({Napi::External<std::unique_ptr<faiss::Index>>::New(env, &index)});
}

Napi::Value IndexHandle::Create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int dimension = RequireDimension(info[0]);
  const std::string description = RequireString(info[1], "description");
  const faiss::MetricType metric = RequireMetric(info[2]);
  std::unique_ptr<faiss::Index> index(CallFaiss(env, "create", [&]() -> faiss::Index* {
    // faiss 1.7.3's factory applies a trailing ",RFlat"/",Refine(...)" to the whole string, so
    // "IDMap2,HNSW32_PQ64,RFlat" would become Refine(IDMap2(HNSW)): a positional refine store
    // looked up by caller ids. Build the id map over the rest explicitly instead, which is
    // the same structure the factory produces for every other "IDMap[2],..." string.
    for (const char* prefix : {"IDMap2,", "IDMap,"}) {
      const std::size_t length = std::strlen(prefix);
      if (description.compare(0, length, prefix) != 0) continue;
      std::unique_ptr<faiss::Index> inner(faiss::index_factory(dimension, description.c_str() + length, metric));
      faiss::IndexIDMap* wrapped = length == 7 ? new faiss::IndexIDMap2(inner.get()) : new faiss::IndexIDMap(inner.get());
      wrapped->own_fields = true;
      inner.release();
      return wrapped;
    }
    return faiss::index_factory(dimension, description.c_str(), metric);
  }));
  DisableHnswPolysemousTraining(*index);
  return Adopt(env, std::move(index));
}

Napi::Value IndexHandle::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = RequirePath(info[0]);
  std::unique_ptr<faiss::Index> index(
      CallFaiss(env, "read", [&] { return faiss::read_index(path.c_str()); }));
  return Adopt(env, std::move(index));
}

Napi::Value IndexHandle::Deserialize(const Napi::CallbackInfo& info) {
  const Napi::Uint8Array bytes = kInvalidArgument.RequireUint8Array(info[0], "bytes");
  return AdoptSerialized(info.Env(), bytes.Data(), bytes.ElementLength());
}

Napi::Value IndexHandle::DeserializeBytes(const Napi::CallbackInfo& info) {
  const ByteBuffer& bytes = IndexBytes::RequireLive(info[0], "bytes");
  return AdoptSerialized(info.Env(), bytes.data(), bytes.size());
}

Napi::Value IndexHandle::DeserializeBytesAsync(const Napi::CallbackInfo& info) {
  ByteBuffer bytes = IndexBytes::Take(info[0], "bytes");
  auto* worker = new DeserializeWorker(info.Env(), std::move(bytes));
  worker->Queue();
  return worker->Promise();
}

Napi::Value IndexHandle::AdoptSerialized(Napi::Env env, const uint8_t* data, std::size_t size) {
  std::unique_ptr<faiss::Index> index(CallFaiss(env, "deserialize", [&] {
    SpanIOReader reader(data, size);
    return faiss::read_index(&reader);
  }));
  return Adopt(env, std::move(index));
}

faiss::Index& IndexHandle::LiveIndex(Napi::Env env) {
  if (!index_) {
    kDisposed.ThrowError(env, "the index has been disposed");
  }
  if (changingAsync_) {
    kInvalidState.ThrowError(env, "the index is being changed by trainAsync() or addWithIdsAsync(); await it first");
  }
  return *index_;
}

Napi::Value IndexHandle::Dimension(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), LiveIndex(info.Env()).d);
}

Napi::Value IndexHandle::Count(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(LiveIndex(info.Env()).ntotal));
}

Napi::Value IndexHandle::IsTrained(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), LiveIndex(info.Env()).is_trained);
}

Napi::Value IndexHandle::Metric(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), MetricName(LiveIndex(info.Env()).metric_type));
}

Napi::Value IndexHandle::HasSimdHnswStorage(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), UsesSimdHnswStorage(LiveIndex(info.Env())));
}

Napi::Value IndexHandle::IsDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), index_ == nullptr);
}

VectorBatch IndexHandle::TrainingVectors(Napi::Env env, const faiss::Index& index, const Napi::Value& value) {
  const VectorBatch vectors = RequireVectors(value, index.d, "vectors");
  if (vectors.count == 0) kInvalidArgument.ThrowRangeError(env, "train() needs at least one vector");
  // Retraining IVF centroids or PQ codebooks would leave the stored codes
  // meaningless, and faiss does not check for it.
  if (index.ntotal > 0) {
    kInvalidState.ThrowError(env,
                             "train() on an index that already holds vectors would invalidate them; reset() first");
  }
  return vectors;
}

void IndexHandle::Train(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  faiss::Index& index = LiveIndex(env);
  const VectorBatch vectors = TrainingVectors(env, index, info[0]);
  BeginChange();
  CallFaiss(env, "train", [&] { index.train(vectors.count, vectors.data); });
}

Napi::Value IndexHandle::TrainAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  faiss::Index& index = LiveIndex(env);
  const VectorBatch vectors = TrainingVectors(env, index, info[0]);
  auto copied = std::make_shared<std::vector<float>>(vectors.data, vectors.data + vectors.count * index.d);
  return ChangeAsync(info, "trainAsync", [&index, copied] {
    index.train(static_cast<faiss::Index::idx_t>(copied->size() / index.d), copied->data());
  });
}

void IndexHandle::Add(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  faiss::Index& index = LiveIndex(env);
  const VectorBatch vectors = RequireVectors(info[0], index.d, "vectors");
  const IdScheme scheme = ClassifyIds(index);
  if (scheme == IdScheme::IdMap || scheme == IdScheme::IdMap2) {
    kInvalidState.ThrowError(env, "an IDMap index stores caller-chosen ids; use addWithIds()");
  }
  RequireTrained(env, index, "add");
  if (vectors.count == 0) return;
  WaitBeforeAppend(index, vectors.count);
  CallFaiss(env, "add", [&] { index.add(vectors.count, vectors.data); });
}

std::pair<VectorBatch, IdBatch> IndexHandle::VectorsWithIds(Napi::Env env, const faiss::Index& index,
                                                             const Napi::CallbackInfo& info) {
  const VectorBatch vectors = RequireVectors(info[0], index.d, "vectors");
  const IdBatch ids = RequireIds(info[1], "ids");
  if (ids.count != vectors.count) {
    kInvalidArgument.ThrowRangeError(
        env, "got " + std::to_string(vectors.count) + " vectors but " + std::to_string(ids.count) + " ids");
  }
  if (ClassifyIds(index) == IdScheme::Positional) {
    kInvalidState.ThrowError(env,
                             "this index labels vectors by position; prefix the factory string with 'IDMap2,' "
                             "(or use an IVF index) to choose ids");
  }
  RequireTrained(env, index, "addWithIds");
  if (vectors.count > 0) RejectDuplicateIds(env, index, ids);
  return {vectors, ids};
}

void IndexHandle::AddWithIds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  faiss::Index& index = LiveIndex(env);
  const auto [vectors, ids] = VectorsWithIds(env, index, info);
  if (vectors.count == 0) return;
  WaitBeforeAppend(index, vectors.count);
  CallFaiss(env, "addWithIds",
            [&] { index.add_with_ids(vectors.count, vectors.data, ids.data); });
}

Napi::Value IndexHandle::AddWithIdsAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  faiss::Index& index = LiveIndex(env);
  const auto [vectors, ids] = VectorsWithIds(env, index, info);
  auto copiedVectors = std::make_shared<std::vector<float>>(vectors.data, vectors.data + vectors.count * index.d);
  auto copiedIds = std::make_shared<std::vector<faiss::Index::idx_t>>(ids.data, ids.data + ids.count);
  return ChangeAsync(info, "addWithIdsAsync", [&index, copiedVectors, copiedIds] {
    if (!copiedIds->empty()) {
      index.add_with_ids(static_cast<faiss::Index::idx_t>(copiedIds->size()), copiedVectors->data(), copiedIds->data());
    }
  });
}

Napi::Value IndexHandle::ChangeAsync(const Napi::CallbackInfo& info, const char* operation,
                                     std::function<void()> change) {
  // Searches already running on worker threads finish first; every later call is refused until the promise settles
  // (LiveIndex), and dispose() waits for it.
  BeginChange();
  auto* worker = new ChangeWorker(info.This().As<Napi::Object>(), *this, operation, std::move(change));
  changingAsync_ = true;
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value IndexHandle::Search(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  faiss::Index& index = LiveIndex(env);
  const VectorBatch queries = RequireVectors(info[0], index.d, "queries");
  const int64_t k = RequireNeighbourCount(info[1], queries.count);
  const int threads = info.Length() > 2 && !info[2].IsUndefined() ? RequireThreadCount(info[2]) : 0;
  RequireTrained(env, index, "search");
  const std::size_t slots = queries.count * static_cast<std::size_t>(k);
  auto distances = Napi::Float32Array::New(env, slots);
  auto labels = NewBigInt64Array(env, slots);
  if (queries.count > 0 && !AnswerEmptySearch(index, slots, distances.Data(), labels.Data())) {
    // A small search costs less than waking OpenMP's threads for it: one query over 40 vectors
    // took 4 us on one thread against 130 us on two idle cores, and about a millisecond when
    // the cores were busy with other work. The count is the JS thread's own, restored after.
    const ScopedThreadCount scoped(threads);
    CallFaiss(env, "search", [&] {
      index.search(queries.count, queries.data, k, distances.Data(), labels.Data());
    });
  }
  return SearchResult(env, distances, labels);
}

Napi::Value IndexHandle::SearchAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  faiss::Index& index = LiveIndex(env);
  const VectorBatch queries = RequireVectors(info[0], index.d, "queries");
  const int64_t k = RequireNeighbourCount(info[1], queries.count);
  RequireTrained(env, index, "searchAsync");
  std::vector<float> copiedQueries(queries.data,
                                   queries.data + queries.count * static_cast<std::size_t>(index.d));
  auto* worker = new SearchWorker(info.This().As<Napi::Object>(), index, searches_,
                                  std::move(copiedQueries),
                                  static_cast<int64_t>(queries.count), k);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

// Vectors an add can take before the storage reallocates; null where the index is not flat codes (FindFlatCodes).
Napi::Value IndexHandle::SpareCapacity(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const faiss::IndexFlatCodes* flat = FindFlatCodes(LiveIndex(env));
  if (flat == nullptr || flat->code_size == 0) return env.Null();
  return Napi::Number::New(env,
                           static_cast<double>((CodesCapacity(flat->codes) - flat->codes.size()) / flat->code_size));
}

// reserveAsync(vectors): room for `vectors` in all (ReserveWorker). Resolves true once the storage is swapped in or
// prepared (OfferStorage), false where there is nothing to do (not flat codes, room enough already, or the index
// changed meanwhile).
Napi::Value IndexHandle::ReserveAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  faiss::Index& index = LiveIndex(env);
  const std::size_t vectors = RequireCount(info[0], "vectors");
  const faiss::IndexFlatCodes* flat = FindFlatCodes(index);
  if (flat == nullptr || flat->code_size == 0 || vectors > SIZE_MAX / flat->code_size ||
      vectors * flat->code_size <= CodesCapacity(flat->codes)) {
    auto settled = Napi::Promise::Deferred::New(env);
    settled.Resolve(Napi::Boolean::New(env, false));
    return settled.Promise();
  }
  auto* worker = new ReserveWorker(info.This().As<Napi::Object>(), *this, *flat, vectors * flat->code_size);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

bool IndexHandle::OfferStorage(std::vector<uint8_t> fresh, std::size_t copied, uint64_t changesAtCopy) {
  if (!index_ || changingAsync_) return false;
  const faiss::IndexFlatCodes* flat = FindFlatCodes(*index_);
  if (flat == nullptr || fresh.capacity() < flat->codes.size() || fresh.capacity() <= CodesCapacity(flat->codes)) {
    return false;
  }
  prepared_ = {std::move(fresh), copied, changesAtCopy};
  if (searches_.IsIdle()) AdoptPrepared();
  return true;
}

bool IndexHandle::AdoptPrepared() {
  if (prepared_.codes.capacity() == 0) return false;
  PreparedStorage prepared = std::move(prepared_);
  prepared_ = {};
  faiss::IndexFlatCodes* flat = index_ ? FindFlatCodes(*index_) : nullptr;
  if (flat == nullptr) return false;
  std::vector<uint8_t>& codes = flat->codes;
  std::vector<uint8_t>& fresh = prepared.codes;
  if (fresh.capacity() < codes.size() || fresh.capacity() <= codes.capacity()) return false;
  // Only appends since the copy: the codes copied are still where they were.
  const std::size_t from =
      changes_ == prepared.changesAtCopy && codes.size() >= prepared.copied ? prepared.copied : 0;
  // Another reserveAsync() may be copying the storage this frees.
  copies_.WaitUntilIdle();
  ++changes_;
  // Within the capacity reserved: neither call reallocates.
  fresh.resize(from);
  fresh.insert(fresh.end(), codes.begin() + static_cast<std::ptrdiff_t>(from), codes.end());
  codes.swap(fresh);
  return true;
}

// adoptReserved(): swaps in the storage a reserveAsync() prepared while searches ran (after async searches still
// running, as every change); true when there was one.
Napi::Value IndexHandle::AdoptReserved(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  LiveIndex(env);
  searches_.WaitUntilIdle();
  return Napi::Boolean::New(env, AdoptPrepared());
}

void IndexHandle::WaitBeforeAppend(faiss::Index& index, std::size_t count) {
  searches_.WaitUntilIdle();
  AdoptPrepared();
  const faiss::IndexFlatCodes* flat = FindFlatCodes(index);
  const bool fits = flat != nullptr && count <= (flat->codes.capacity() - flat->codes.size()) / flat->code_size;
  if (!fits) {
    copies_.WaitUntilIdle();
    ++changes_;
  }
}

Napi::Value IndexHandle::RemoveIds(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  faiss::Index& index = LiveIndex(env);
  const IdBatch ids = RequireIds(info[0], "ids");
  if (!SupportsStableRemoval(index)) {
    kInvalidState.ThrowError(env,
                             "removeIds() needs ids that survive removal: use 'IDMap2,' over Flat/SQ/PQ, or an IVF "
                             "index without an array direct map (HNSW cannot remove at all)");
  }
  if (ids.count == 0) return Napi::Number::New(env, 0);
  BeginChange();
  const std::size_t removed = CallFaiss(env, "removeIds", [&]() -> std::size_t {
    // faiss 1.7.3 only removes from an IVF hashtable direct map when handed an
    // explicit id list; everywhere else a hashed set is the fast membership test.
    if (RemovalNeedsIdList(index)) {
      faiss::IDSelectorArray selector(ids.count, ids.data);
      return index.remove_ids(selector);
    }
    faiss::IDSelectorBatch selector(ids.count, ids.data);
    return index.remove_ids(selector);
  });
  return Napi::Number::New(env, static_cast<double>(removed));
}

Napi::Value IndexHandle::Reconstruct(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  faiss::Index& index = LiveIndex(env);
  const int64_t id = RequireNonNegativeBigIntId(info[0], "id");
  switch (ClassifyIds(index)) {
    case IdScheme::Positional:
      // faiss indexes the storage array without a bounds check here.
      if (id >= index.ntotal) {
        kNotFound.ThrowRangeError(env, "id " + std::to_string(id) + " is out of range: the index holds " +
                                           std::to_string(index.ntotal) + " vectors");
      }
      break;
    case IdScheme::IdMap:
      kInvalidState.ThrowError(env,
                               "IDMap keeps no reverse map; create the index with 'IDMap2,' to reconstruct vectors");
    case IdScheme::Ivf:
      if (FindIvf(index)->direct_map.type == faiss::DirectMap::NoMap) {
        kInvalidState.ThrowError(env, "an IVF index needs enableDirectMap() before reconstruct()");
      }
      [[fallthrough]];
    case IdScheme::IdMap2:
      if (LookUpId(index, id) == IdPresence::Absent) {
        kNotFound.ThrowRangeError(env, "id " + std::to_string(id) + " is not in the index");
      }
      break;
  }
  auto vector = Napi::Float32Array::New(env, static_cast<std::size_t>(index.d));
  CallFaiss(env, "reconstruct", [&] { index.reconstruct(id, vector.Data()); });
  return vector;
}

void IndexHandle::SetParameter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  faiss::Index& index = LiveIndex(env);
  const std::string name = RequireString(info[0], "name");
  if (!info[1].IsNumber()) kInvalidArgument.ThrowTypeError(env, "value must be a number");
  const double value = info[1].As<Napi::Number>().DoubleValue();
  // faiss casts these to int without checks; 0 or negative values make HNSW
  // and IVF searches misbehave rather than fail.
  const bool isCountParameter = name == "nprobe" || name == "efSearch";
  if (isCountParameter &&
      (!std::isfinite(value) || std::trunc(value) != value || value < 1 || value > INT_MAX)) {
    kInvalidArgument.ThrowRangeError(env, name + " must be a positive integer");
  }
  if (!std::isfinite(value) || value < 0) {
    kInvalidArgument.ThrowRangeError(env, "parameter values must be finite and non-negative");
  }
  BeginChange();
  CallFaiss(env, "setParameter",
            [&] { faiss::ParameterSpace().set_index_parameter(&index, name, value); });
}

void IndexHandle::EnableDirectMap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  faiss::Index& index = LiveIndex(env);
  faiss::IndexIVF* ivf = FindIvf(index);
  if (ivf == nullptr) kInvalidState.ThrowError(env, "enableDirectMap() only applies to IVF indexes");
  BeginChange();
  // A hashtable rather than an array: it accepts arbitrary ids and removal.
  CallFaiss(env, "enableDirectMap",
            [&] { ivf->set_direct_map_type(faiss::DirectMap::Hashtable); });
}

void IndexHandle::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const faiss::Index& index = LiveIndex(env);
  const std::string path = RequirePath(info[0]);
  CallFaiss(env, "write", [&] { faiss::write_index(&index, path.c_str()); });
}

Napi::Value IndexHandle::Serialize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const faiss::Index& index = LiveIndex(env);
  faiss::VectorIOWriter writer;
  CallFaiss(env, "serialize", [&] { faiss::write_index(&index, &writer); });
  return Napi::Buffer<uint8_t>::Copy(env, writer.data.data(), writer.data.size());
}

Napi::Value IndexHandle::SerializeToBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const faiss::Index& index = LiveIndex(env);
  auto* worker = new SerializeWorker(info.This().As<Napi::Object>(), index, searches_);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

void IndexHandle::Reset(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  faiss::Index& index = LiveIndex(env);
  BeginChange();
  CallFaiss(env, "reset", [&] { index.reset(); });
}

void IndexHandle::Dispose(const Napi::CallbackInfo&) {
  // Idempotent, like closing a file handle twice.
  if (!index_) return;
  prepared_ = {};
  BeginChange();
  index_.reset();
}

}  // namespace facegate_faiss
