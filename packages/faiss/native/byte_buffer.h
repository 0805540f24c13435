// The memory behind IndexBytes. A serialised shard is hundreds of megabytes, and on these VMs each 4 KiB page costs
// ~10 us to fault in: zero-filling 128 MB through std::vector's allocator held the JS thread for 350 ms per shard while
// a gallery opened. Buffers of 2 MiB and more come straight from mmap, 2 MiB-aligned and asked for transparent huge
// pages (one fault per 2 MiB where the kernel grants them), already zeroed, and vector's value-initialisation is
// skipped; they go back to the kernel at once when freed.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <utility>
#include <vector>

namespace facegate_faiss {

template <typename T>
struct PageBackedAllocator {
  using value_type = T;

  PageBackedAllocator() = default;
  template <typename Other>
  PageBackedAllocator(const PageBackedAllocator<Other>&) noexcept {}

  T* allocate(std::size_t count) {
    const std::size_t bytes = count * sizeof(T);
    if (bytes < kHugePage) {
      void* memory = std::calloc(bytes == 0 ? 1 : bytes, 1);
      if (memory == nullptr) throw std::bad_alloc();
      return static_cast<T*>(memory);
    }
    // Over-map by one huge page and unmap the unaligned ends: the kernel only backs aligned 2 MiB ranges with huge
    // pages.
    const std::size_t length = Rounded(bytes);
    void* mapped = mmap(nullptr, length + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED) throw std::bad_alloc();
    const auto start = reinterpret_cast<std::uintptr_t>(mapped);
    const std::uintptr_t aligned = (start + kHugePage - 1) & ~(std::uintptr_t{kHugePage} - 1);
    if (aligned > start) munmap(mapped, aligned - start);
    const std::uintptr_t end = start + length + kHugePage;
    if (end > aligned + length) munmap(reinterpret_cast<void*>(aligned + length), end - (aligned + length));
    // Best effort: without transparent huge pages the buffer is still lazily faulted, zeroed memory.
    madvise(reinterpret_cast<void*>(aligned), length, MADV_HUGEPAGE);
    return reinterpret_cast<T*>(aligned);
  }

  void deallocate(T* pointer, std::size_t count) noexcept {
    const std::size_t bytes = count * sizeof(T);
    if (bytes < kHugePage) {
      std::free(pointer);
    } else {
      munmap(pointer, Rounded(bytes));
    }
  }

  // Default-initialisation: the memory is zeroed already, or about to be written over.
  template <typename U>
  void construct(U* where) noexcept {
    ::new (static_cast<void*>(where)) U;
  }
  template <typename U, typename... Args>
  void construct(U* where, Args&&... args) {
    ::new (static_cast<void*>(where)) U(std::forward<Args>(args)...);
  }

  friend bool operator==(const PageBackedAllocator&, const PageBackedAllocator&) noexcept { return true; }
  friend bool operator!=(const PageBackedAllocator&, const PageBackedAllocator&) noexcept { return false; }

 private:
  static constexpr std::size_t kHugePage = std::size_t{2} << 20;
  static std::size_t Rounded(std::size_t bytes) { return (bytes + kHugePage - 1) & ~(kHugePage - 1); }
};

using ByteBuffer = std::vector<uint8_t, PageBackedAllocator<uint8_t>>;

// Asks for transparent huge pages over the 2 MiB-aligned part of [start, start + length), before it is touched: for
// memory that must come from the default allocator (faiss's own vectors), as PageBackedAllocator does for its own.
inline void AdviseHugePages(void* start, std::size_t length) {
  constexpr std::uintptr_t kHugePage = std::uintptr_t{2} << 20;
  const auto from = (reinterpret_cast<std::uintptr_t>(start) + kHugePage - 1) & ~(kHugePage - 1);
  const auto to = (reinterpret_cast<std::uintptr_t>(start) + length) & ~(kHugePage - 1);
  if (to > from) madvise(reinterpret_cast<void*>(from), to - from, MADV_HUGEPAGE);
}

}  // namespace facegate_faiss
