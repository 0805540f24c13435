#include "simd_flat.h"

#include "index_traits.h"

#include <cstdint>
#include <typeinfo>

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/impl/DistanceComputer.h>

namespace facegate_faiss {

// `omp simd reduction` lets the compiler reorder the sum into vector lanes (as faiss's own SIMD
// builds do); each clone is compiled for its instruction set and the loader picks one per CPU.
__attribute__((target_clones("arch=skylake-avx512", "arch=haswell", "default"))) float InnerProduct(
    const float* a, const float* b, std::size_t dimension) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (std::size_t i = 0; i < dimension; ++i) sum += a[i] * b[i];
  return sum;
}

__attribute__((target_clones("arch=skylake-avx512", "arch=haswell", "default"))) float L2Squared(
    const float* a, const float* b, std::size_t dimension) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (std::size_t i = 0; i < dimension; ++i) {
    const float difference = a[i] - b[i];
    sum += difference * difference;
  }
  return sum;
}

namespace {

class SimdFlatDistanceComputer final : public faiss::FlatCodesDistanceComputer {
 public:
  explicit SimdFlatDistanceComputer(const faiss::IndexFlat& storage)
      : faiss::FlatCodesDistanceComputer(storage.codes.data(), storage.code_size),
        vectors_(reinterpret_cast<const float*>(storage.codes.data())),
        dimension_(static_cast<std::size_t>(storage.d)),
        innerProduct_(storage.metric_type == faiss::METRIC_INNER_PRODUCT) {}

  void set_query(const float* query) override { query_ = query; }

  float distance_to_code(const uint8_t* code) override {
    return Distance(query_, reinterpret_cast<const float*>(code));
  }

  float symmetric_dis(idx_t i, idx_t j) override {
    return Distance(vectors_ + i * dimension_, vectors_ + j * dimension_);
  }

 private:
  float Distance(const float* a, const float* b) const {
    return innerProduct_ ? InnerProduct(a, b, dimension_) : L2Squared(a, b, dimension_);
  }

  const float* vectors_;
  std::size_t dimension_;
  bool innerProduct_;
  const float* query_ = nullptr;
};

// Same data and file format as IndexFlat (write_index sees an IndexFlat); only the distance
// computer differs.
struct SimdIndexFlat final : faiss::IndexFlat {
  explicit SimdIndexFlat(faiss::IndexFlat& from) : faiss::IndexFlat(from.d, from.metric_type) {
    metric_arg = from.metric_arg;
    codes.swap(from.codes);
    ntotal = from.ntotal;
    is_trained = from.is_trained;
    from.ntotal = 0;
  }

  faiss::FlatCodesDistanceComputer* get_FlatCodesDistanceComputer() const override {
    return new SimdFlatDistanceComputer(*this);
  }
};

bool IsPlainFlat(const faiss::Index* index) {
  const std::type_info& type = typeid(*index);
  return type == typeid(faiss::IndexFlat) || type == typeid(faiss::IndexFlatIP) ||
         type == typeid(faiss::IndexFlatL2);
}

}  // namespace

bool UsesSimdHnswStorage(faiss::Index& index) {
  const faiss::IndexHNSW* hnsw = FindHnsw(index);
  return hnsw != nullptr && hnsw->storage != nullptr && typeid(*hnsw->storage) == typeid(SimdIndexFlat);
}

bool UseSimdHnswStorage(faiss::Index& index) {
  faiss::IndexHNSW* hnsw = FindHnsw(index);
  if (hnsw == nullptr || hnsw->storage == nullptr || !hnsw->own_fields || !IsPlainFlat(hnsw->storage)) {
    return false;
  }
  auto* plain = static_cast<faiss::IndexFlat*>(hnsw->storage);
  hnsw->storage = new SimdIndexFlat(*plain);
  delete plain;
  return true;
}

}  // namespace facegate_faiss
