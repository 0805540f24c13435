#include "blas.h"

#include <dlfcn.h>

#include <faiss/utils/distances.h>

namespace facegate_faiss {

namespace {

using GetConfig = char* (*)();
using GetThreads = int (*)();
using SetThreads = void (*)(int);

// OpenBLAS exports these next to the BLAS symbols; the reference BLAS does not. libblas.so.3
// is a dependency of this addon, so it is already loaded; Node dlopens addons RTLD_LOCAL, so
// look in that library's own handle rather than the global scope.
template <typename Function>
Function Lookup(const char* name) {
  static void* const library = dlopen("libblas.so.3", RTLD_LAZY | RTLD_NOLOAD);
  if (library == nullptr) return nullptr;
  return reinterpret_cast<Function>(dlsym(library, name));
}

}  // namespace

BlasSettings CurrentBlasSettings() {
  return {faiss::distance_compute_blas_threshold, faiss::distance_compute_blas_query_bs,
          faiss::distance_compute_blas_database_bs};
}

void ApplyBlasSettings(const BlasSettings& settings) {
  faiss::distance_compute_blas_threshold = settings.threshold;
  faiss::distance_compute_blas_query_bs = settings.queryBlockSize;
  faiss::distance_compute_blas_database_bs = settings.databaseBlockSize;
}

bool IsOpenBlas() { return Lookup<GetConfig>("openblas_get_config") != nullptr; }

std::string BlasImplementation() {
  const auto getConfig = Lookup<GetConfig>("openblas_get_config");
  if (getConfig == nullptr) return "reference";
  const char* config = getConfig();
  const std::string text = config != nullptr ? config : "";
  return text.rfind("OpenBLAS", 0) == 0 ? text : "OpenBLAS " + text;
}

int OpenBlasThreadCount() {
  const auto getThreads = Lookup<GetThreads>("openblas_get_num_threads");
  return getThreads == nullptr ? -1 : getThreads();
}

void SetOpenBlasThreadCount(int count) {
  const auto setThreads = Lookup<SetThreads>("openblas_set_num_threads");
  if (setThreads != nullptr) setThreads(count);
}

}  // namespace facegate_faiss
