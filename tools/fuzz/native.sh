#!/usr/bin/env bash
# Builds copies of the native addons (@facegate/jpeg, @facegate/png, @facegate/resample) with AddressSanitizer and
# UndefinedBehaviorSanitizer and runs tools/fuzz/native-fuzz.ts against them (see its header): damaged JPEGs and PNGs
# of the shared data, random arguments to the resampler. A sanitizer report aborts the run with a non-zero status.
# Needs what `npm run build:native` needs (g++, the libraries' headers: setup installs them) and gcc's libasan and
# libubsan (part of gcc).
#
#   bash tools/fuzz/native.sh [--seconds 600] [--seed 1] [--data DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
# node-gyp writes node-addon-api's makefiles at the path from a package to node-addon-api taken from the package's
# build folder, one level off: below the folder where the two paths part, beside the copies' own. From a folder of
# /tmp that was /tmp/<the project's path>, left behind; from a folder of the project's own, it is that folder.
work="$(mktemp -d "$root/.native-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT
sanitizers="-fsanitize=address,undefined"
for package in jpeg png resample; do
  copy="$work/packages/$package"
  mkdir -p "$copy"
  cp -r "$root/packages/$package/"{native,src,binding.gyp,package.json} "$copy/"
  ln -s "$root/node_modules" "$copy/node_modules"
  (cd "$copy" && CXXFLAGS="$sanitizers -fno-omit-frame-pointer -g" LDFLAGS="$sanitizers" \
    npm run --silent build:native > "$copy/build.log" 2>&1) ||
    { cat "$copy/build.log"; exit 1; }
  # A build that dropped the flags would fuzz without a sanitizer and report nothing.
  linked="$(ldd "$copy/build/Release/"*.node)"
  [[ "$linked" == *libasan* ]] ||
    { echo "the $package addon was built without AddressSanitizer" >&2; exit 1; }
done
# Node itself is not instrumented: the runtimes are preloaded, and leaks (Node's own, at exit) are not reported.
cd "$root"
FUZZ_PACKAGES="$work/packages" \
  LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \
  ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  node --conditions=development --import tsx tools/fuzz/native-fuzz.ts "$@"
