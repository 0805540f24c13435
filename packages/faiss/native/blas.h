// faiss's process-wide choices between its own distance loops and BLAS sgemm, and which BLAS
// library libblas.so.3 resolved to (Debian's alternatives: reference BLAS or OpenBLAS).
#pragma once

#include <string>

namespace facegate_faiss {

struct BlasSettings {
  // faiss uses BLAS for exhaustive search when the number of queries is >= this (faiss
  // default 20). 1 sends single-query Flat search through sgemm too.
  int threshold;
  // Block sizes of the BLAS path: queries and database vectors per sgemm call.
  int queryBlockSize;
  int databaseBlockSize;
};

BlasSettings CurrentBlasSettings();
void ApplyBlasSettings(const BlasSettings& settings);

// "OpenBLAS <config>" when libblas.so.3 is OpenBLAS, "reference" otherwise.
std::string BlasImplementation();
bool IsOpenBlas();

// OpenBLAS's own thread pool size; -1 when the BLAS is not OpenBLAS.
int OpenBlasThreadCount();
void SetOpenBlasThreadCount(int count);

}  // namespace facegate_faiss
