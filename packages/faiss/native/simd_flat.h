// Vectorised distance kernels for HNSW over flat storage. Debian's libfaiss is built for the
// x86-64 baseline, so every distance inside its HNSW (build and search) is a scalar loop; HNSW
// asks its storage for a DistanceComputer, which is faiss's own extension point. The binding
// swaps the plain IndexFlat storage for one whose computer uses kernels compiled here for
// AVX-512 / AVX2+FMA and chosen at load time by the CPU (GCC target_clones). File formats are
// unchanged: the storage still writes and reads as an IndexFlat.
#pragma once

#include <cstddef>

#include <faiss/Index.h>

namespace facegate_faiss {

float InnerProduct(const float* a, const float* b, std::size_t dimension);
float L2Squared(const float* a, const float* b, std::size_t dimension);

// Replaces the plain IndexFlat storage of an HNSW index inside `index` (behind IDMap,
// pre-transform or refine wrappers) with the vectorised one; other indexes are left as they are.
// Returns true when a storage was replaced.
bool UseSimdHnswStorage(faiss::Index& index);

// True when `index` holds an HNSW whose storage is the vectorised one.
bool UsesSimdHnswStorage(faiss::Index& index);

}  // namespace facegate_faiss
