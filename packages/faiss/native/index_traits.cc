#include "index_traits.h"

#include <faiss/IndexFlatCodes.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexPQ.h>
#include <faiss/IndexRefine.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexPreTransform.h>

namespace facegate_faiss {

namespace {

const faiss::Index* SkipTransforms(const faiss::Index* index) {
  while (const auto* transformed = dynamic_cast<const faiss::IndexPreTransform*>(index)) {
    index = transformed->index;
  }
  return index;
}

}  // namespace

IdScheme ClassifyIds(const faiss::Index& index) {
  const faiss::Index* core = SkipTransforms(&index);
  if (dynamic_cast<const faiss::IndexIDMap2*>(core) != nullptr) return IdScheme::IdMap2;
  if (dynamic_cast<const faiss::IndexIDMap*>(core) != nullptr) return IdScheme::IdMap;
  if (dynamic_cast<const faiss::IndexIVF*>(core) != nullptr) return IdScheme::Ivf;
  return IdScheme::Positional;
}

bool SupportsStableRemoval(const faiss::Index& index) {
  const faiss::Index* core = SkipTransforms(&index);
  if (const auto* idMap = dynamic_cast<const faiss::IndexIDMap*>(core)) {
    return dynamic_cast<const faiss::IndexFlatCodes*>(SkipTransforms(idMap->index)) != nullptr;
  }
  if (const auto* ivf = dynamic_cast<const faiss::IndexIVF*>(core)) {
    // An Array direct map cannot remove; faiss would throw, but saying so up
    // front gives a better message.
    return ivf->direct_map.type != faiss::DirectMap::Array;
  }
  return false;
}

bool RemovalNeedsIdList(const faiss::Index& index) {
  const auto* ivf = dynamic_cast<const faiss::IndexIVF*>(SkipTransforms(&index));
  return ivf != nullptr && ivf->direct_map.type == faiss::DirectMap::Hashtable;
}

faiss::IndexIVF* FindIvf(faiss::Index& index) {
  faiss::Index* current = &index;
  for (;;) {
    if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(current)) return ivf;
    if (auto* transformed = dynamic_cast<faiss::IndexPreTransform*>(current)) {
      current = transformed->index;
    } else if (auto* idMap = dynamic_cast<faiss::IndexIDMap*>(current)) {
      current = idMap->index;
    } else {
      return nullptr;
    }
  }
}

faiss::IndexHNSW* FindHnsw(faiss::Index& index) {
  faiss::Index* current = &index;
  for (;;) {
    if (auto* transformed = dynamic_cast<faiss::IndexPreTransform*>(current)) {
      current = transformed->index;
    } else if (auto* idMap = dynamic_cast<faiss::IndexIDMap*>(current)) {
      current = idMap->index;
    } else if (auto* refine = dynamic_cast<faiss::IndexRefine*>(current)) {
      current = refine->base_index;
    } else {
      return dynamic_cast<faiss::IndexHNSW*>(current);
    }
  }
}

faiss::IndexFlatCodes* FindFlatCodes(faiss::Index& index) {
  faiss::Index* current = &index;
  if (auto* idMap = dynamic_cast<faiss::IndexIDMap*>(current)) current = idMap->index;
  return dynamic_cast<faiss::IndexFlatCodes*>(current);
}

void DisableHnswPolysemousTraining(faiss::Index& index) {
  if (auto* hnsw = FindHnsw(index)) {
    if (auto* pq = dynamic_cast<faiss::IndexPQ*>(hnsw->storage)) pq->do_polysemous_training = false;
  }
}

IdPresence LookUpId(const faiss::Index& index, int64_t id) {
  const faiss::Index* core = SkipTransforms(&index);
  if (const auto* idMap2 = dynamic_cast<const faiss::IndexIDMap2*>(core)) {
    return idMap2->rev_map.count(id) != 0 ? IdPresence::Present : IdPresence::Absent;
  }
  if (const auto* ivf = dynamic_cast<const faiss::IndexIVF*>(core)) {
    switch (ivf->direct_map.type) {
      case faiss::DirectMap::Hashtable:
        return ivf->direct_map.hashtable.count(id) != 0 ? IdPresence::Present
                                                         : IdPresence::Absent;
      case faiss::DirectMap::Array:
        return id < static_cast<int64_t>(ivf->direct_map.array.size()) ? IdPresence::Present
                                                                        : IdPresence::Absent;
      case faiss::DirectMap::NoMap:
        return IdPresence::Unknown;
    }
  }
  return IdPresence::Unknown;
}

}  // namespace facegate_faiss
