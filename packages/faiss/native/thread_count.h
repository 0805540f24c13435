// OpenMP thread count shared by the JS thread and libuv worker threads.
//
// omp_set_num_threads() only changes the calling thread's setting; a libuv
// worker thread keeps libgomp's process default (all cores). So the requested
// count is remembered here and re-applied on each worker before it searches.
#pragma once

namespace facegate_faiss {

void SetRequestedThreadCount(int count);

// Applies the last count passed to SetRequestedThreadCount to the calling
// thread; a no-op until a count has been requested.
void ApplyRequestedThreadCount();

int CurrentThreadCount();

// Runs the calling thread's OpenMP regions on `count` threads until the end of
// the scope, then restores its previous count; 0 changes nothing.
class ScopedThreadCount {
 public:
  explicit ScopedThreadCount(int count);
  ScopedThreadCount(const ScopedThreadCount&) = delete;
  ScopedThreadCount& operator=(const ScopedThreadCount&) = delete;
  ~ScopedThreadCount();

 private:
  int previous_ = 0;
};

}  // namespace facegate_faiss
