// Keeps index mutations from overlapping with searches running on libuv
// worker threads.
//
// A std::shared_mutex does not fit: the read side would have to be acquired on
// the JS thread (so a search sees the index as it was when searchAsync() was
// called) but released on a worker thread, and a shared_mutex must be unlocked
// by the thread that locked it. A counter with a condition variable has no
// such owner rule.
//
// All mutations and all ticket issuing happen on the single JS thread that owns
// the index, so once WaitUntilIdle() returns no new search can start until the
// mutation has finished.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>

namespace facegate_faiss {

class SearchGate {
 public:
  void Enter() {
    std::lock_guard<std::mutex> lock(mutex_);
    ++inFlight_;
  }

  void Leave() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (--inFlight_ == 0) idle_.notify_all();
  }

  bool IsIdle() {
    std::lock_guard<std::mutex> lock(mutex_);
    return inFlight_ == 0;
  }

  void WaitUntilIdle() {
    std::unique_lock<std::mutex> lock(mutex_);
    idle_.wait(lock, [this] { return inFlight_ == 0; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable idle_;
  std::size_t inFlight_ = 0;
};

// Marks one search as in flight from construction until Release() or
// destruction, whichever comes first; the destructor covers a worker that is
// torn down without ever running (environment shutdown).
class SearchTicket {
 public:
  explicit SearchTicket(SearchGate& gate) : gate_(&gate) { gate_->Enter(); }
  SearchTicket(const SearchTicket&) = delete;
  SearchTicket& operator=(const SearchTicket&) = delete;
  ~SearchTicket() { Release(); }

  void Release() {
    if (gate_ != nullptr) {
      gate_->Leave();
      gate_ = nullptr;
    }
  }

 private:
  SearchGate* gate_;
};

}  // namespace facegate_faiss
