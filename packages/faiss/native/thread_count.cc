#include "thread_count.h"

#include <omp.h>

#include <atomic>

namespace facegate_faiss {

namespace {
std::atomic<int> requestedThreadCount{0};
}  // namespace

void SetRequestedThreadCount(int count) {
  requestedThreadCount.store(count);
  omp_set_num_threads(count);
}

void ApplyRequestedThreadCount() {
  const int count = requestedThreadCount.load();
  if (count > 0 && omp_get_max_threads() != count) omp_set_num_threads(count);
}

int CurrentThreadCount() { return omp_get_max_threads(); }

ScopedThreadCount::ScopedThreadCount(int count) {
  if (count <= 0) return;
  previous_ = omp_get_max_threads();
  omp_set_num_threads(count);
}

ScopedThreadCount::~ScopedThreadCount() {
  if (previous_ > 0) omp_set_num_threads(previous_);
}

}  // namespace facegate_faiss
