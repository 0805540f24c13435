#!/bin/sh
# Builds the raw libfaiss baseline into bench/faiss/build/raw_search.
# Debian's libfaiss-dev ships only a static libfaiss.a, so its BLAS/LAPACK and
# OpenMP dependencies have to be named explicitly.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/build"
g++ -O2 -std=c++17 -fopenmp "$here/raw_search.cpp" -o "$here/build/raw_search" -lfaiss -llapack -lblas
echo "$here/build/raw_search"
