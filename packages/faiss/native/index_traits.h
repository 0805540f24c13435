// What an index built by index_factory (or read from disk) can safely do with
// ids. faiss exposes the same virtual methods on every index type, but their
// meaning differs: on a bare Flat/HNSW/SQ/PQ index an "id" is a row position
// that shifts when rows are removed, and several methods index arrays without
// bounds checks. These helpers look through the wrapper types to decide.
#pragma once

#include <cstdint>

#include <faiss/Index.h>
#include <faiss/IndexFlatCodes.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>

namespace facegate_faiss {

enum class IdScheme {
  // Labels are row positions (Flat, HNSW, SQ, PQ, ... without an IDMap).
  Positional,
  // IndexIDMap: caller-chosen ids, no reverse map (no reconstruct).
  IdMap,
  // IndexIDMap2: caller-chosen ids with a reverse map (reconstruct works).
  IdMap2,
  // IndexIVF*: ids are stored in the inverted lists.
  Ivf,
};

IdScheme ClassifyIds(const faiss::Index& index);

// True when removing ids leaves every other id mapped to the same vector.
// IndexIDMap assumes its sub-index compacts rows on removal, which only the
// flat-codes family does; over IVF it silently relabels results (verified on
// 1.7.3: removing 3 ids made the vector of id 1500 come back as 1503).
bool SupportsStableRemoval(const faiss::Index& index);

// True when remove_ids() must be given an IDSelectorArray: an IVF index with
// a hashtable direct map throws on any other selector in faiss 1.7.3.
bool RemovalNeedsIdList(const faiss::Index& index);

// The IVF index inside `index` (possibly behind IDMap or pre-transforms), or
// nullptr when there is none.
faiss::IndexIVF* FindIvf(faiss::Index& index);

// The HNSW index inside `index` (behind IDMap, IndexRefine or pre-transforms),
// or nullptr when there is none.
faiss::IndexHNSW* FindHnsw(faiss::Index& index);

// The flat-codes storage (Flat, SQ, PQ) that `index` adds to directly or behind an IDMap, or nullptr for every other
// layout (HNSW, IVF, pre-transforms, refine), whose growth this binding does not manage.
faiss::IndexFlatCodes* FindFlatCodes(faiss::Index& index);

// Turns off polysemous training of the PQ storage of an HNSW<M>_PQ<m> index
// (also behind IDMap, IndexRefine or pre-transforms). faiss 1.7.3 enables it
// for 8-bit PQ; it only serves polysemous (Hamming) filtering, which HNSW never
// uses, and it took over 10 minutes on 10k training vectors on 2 cores.
void DisableHnswPolysemousTraining(faiss::Index& index);

enum class IdPresence { Present, Absent, Unknown };

// Whether `id` is stored, for the index types that can answer without a scan
// (IDMap2 reverse map, IVF direct map); Unknown otherwise.
IdPresence LookUpId(const faiss::Index& index, int64_t id);

}  // namespace facegate_faiss
