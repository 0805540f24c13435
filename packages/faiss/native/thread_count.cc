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

}  // namespace facegate_faiss
