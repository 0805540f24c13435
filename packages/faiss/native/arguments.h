// Validation of JS arguments before anything reaches faiss.
//
// faiss checks some preconditions with FAISS_THROW (which we catch), but others
// only with assert() or not at all (out-of-range keys, NaN coordinates, k <= 0
// in some index types), and those abort or corrupt the process. So every
// argument is checked here first, and faiss is only ever called with inputs it
// is known to handle.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace facegate_faiss {

// A borrowed view of `count` row-major vectors of `dimension` floats. Valid
// only while the JS typed array it came from is alive and untouched, i.e. for
// the duration of one synchronous call.
struct VectorBatch {
  const float* data;
  std::size_t count;
};

struct IdBatch {
  const int64_t* data;
  std::size_t count;
};

// Largest dimension accepted; far beyond any face embedding, small enough that
// size arithmetic below cannot overflow.
inline constexpr int kMaxDimension = 1 << 16;

// Upper bound on n * k result slots of one search, so a typo in k fails fast
// instead of attempting a multi-gigabyte allocation.
inline constexpr std::size_t kMaxResultSlots = std::size_t{1} << 28;

int RequireDimension(const Napi::Value& value);
std::string RequireString(const Napi::Value& value, const char* name);
std::string RequirePath(const Napi::Value& value);

// A Float32Array whose length is a multiple of `dimension` and whose values
// are all finite (NaN/Inf poison HNSW graphs and k-means silently).
VectorBatch RequireVectors(const Napi::Value& value, int dimension, const char* name);

// A BigInt64Array of non-negative ids (faiss reserves -1 for "no result").
IdBatch RequireIds(const Napi::Value& value, const char* name);

int64_t RequireNonNegativeBigIntId(const Napi::Value& value, const char* name);

// A positive integer k such that `queryCount * k` stays within kMaxResultSlots.
int64_t RequireNeighbourCount(const Napi::Value& value, std::size_t queryCount);

int RequireThreadCount(const Napi::Value& value);

// A byte or vector count: an integer from 0 to 2^40, far above any gallery shard's index and small enough that
// offset + length cannot overflow.
std::size_t RequireCount(const Napi::Value& value, const char* name);

}  // namespace facegate_faiss
