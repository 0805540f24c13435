#!/usr/bin/env bash
# Builds and runs tools/jpeg/colour-bench.cc (see its header) against the working tree's packages/jpeg/native,
# with `--against REV` beside that revision's colour.cc, on the given JPEGs (default: the shared data's photos that
# carry an ICC profile, up to 8). Needs g++, libjpeg-turbo and Little CMS headers (setup installs them) and node
# with sharp installed (for libvips' sRGB profile).
#
#   [SHRINK=1|2|4|8] [ROUNDS=15] bash tools/jpeg/colour-bench.sh [--against REV] [PHOTO.jpg...]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
against=""
if [[ "${1:-}" == "--against" ]]; then
  against="$2"
  shift 2
fi
native="$root/packages/jpeg/native"
flags=(-O2 -std=c++17 -I "$native")
objects=("$work/colour.o")
g++ "${flags[@]}" -c "$native/colour.cc" -o "$work/colour.o"
if [[ -n "$against" ]]; then
  git -C "$root" show "$against:packages/jpeg/native/colour.cc" > "$work/colour-baseline.cc"
  g++ "${flags[@]}" -Dfacegate_jpeg=facegate_baseline -c "$work/colour-baseline.cc" -o "$work/colour-baseline.o"
  objects+=("$work/colour-baseline.o")
  flags+=(-DWITH_BASELINE)
fi
g++ "${flags[@]}" "$root/tools/jpeg/colour-bench.cc" "$native/jpeg.cc" "${objects[@]}" -llcms2 -ljpeg -o "$work/colour-bench"
(cd "$root" && node -e "
const sharp = require('sharp');
sharp({ create: { width: 1, height: 1, channels: 3, background: '#000' } }).withIccProfile('srgb').png().toBuffer()
  .then((tagged) => sharp(tagged).metadata())
  .then(({ icc }) => require('fs').writeFileSync('$work/srgb.icc', icc));")
photos=("$@")
if [[ ${#photos[@]} -eq 0 ]]; then
  data="$root/../shared/data"
  mapfile -t photos < <(grep -rl --include='*.jpg' -a 'ICC_PROFILE' "$data" 2>/dev/null | sort | head -8)
fi
"$work/colour-bench" "$work/srgb.icc" "${photos[@]}"
