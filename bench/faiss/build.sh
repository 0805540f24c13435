#!/bin/sh
# Builds the raw libfaiss baseline (raw_search), the BLAS A/B (blas_bench) and the approximate-index
# sweep (ivf_sweep) into bench/faiss/build/.
# Debian's libfaiss-dev ships only a static libfaiss.a, so its BLAS/LAPACK and
# OpenMP dependencies have to be named explicitly.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/build"
for program in raw_search blas_bench ivf_sweep; do
  # ivf_sweep links the binding's vectorised HNSW storage (--simd 1), compiled as the addon compiles it.
  g++ -O2 -std=c++17 -fopenmp "$here/$program.cpp" "$here/../../packages/faiss/native/simd_flat.cc" \
    "$here/../../packages/faiss/native/index_traits.cc" \
    -o "$here/build/$program" -lfaiss -llapack -lblas
  echo "$here/build/$program"
done
