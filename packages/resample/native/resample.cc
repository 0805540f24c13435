// Bit-exact port of libvips 8.18.7 `vips_resize(kernel = linear)` for 3-band uchar images, as
// called by sharp 0.35.5 for `extract(region).resize(w, h, { fit: 'fill', kernel: 'linear' })`.
//
// Each rule below was confirmed against the installed sharp, not only read in libvips' source
// (test/pipeline/resample-native.test.ts compares the two byte for byte); README.md explains the
// libvips behaviour it copies.
// In short, per axis libvips does
//   integer box pre-shrink (factor >= 4 only) -> reduce with a 12-bit linear mask -> uint8,
// vertically first, then horizontally, and finishes with a fixed-point bilinear affine when
// either axis is enlarged. Every intermediate image is uint8, exactly as in libvips.
//
// Exactness rules followed here (do not "simplify" them):
//  * all geometry is computed in double precision in the same order as libvips (no FMA:
//    binding.gyp passes -ffp-contract=off, and no -ffast-math);
//  * sub-pixel positions are *accumulated* (X += shrink) and the accumulator restarts at
//    the start of every libvips region (16/128-row strips or 128-px tiles), because the
//    accumulated rounding error decides the mask index at knife-edge positions;
//  * masks are truncated, not rounded, to 12 bits; sums are rounded with +2048 >> 12.
//
// Speed: the geometry is turned into per-output tap lists once per call (a few microseconds),
// so the pixel loops are plain integer multiply-adds over uint8 data that gcc vectorises
// (the vertical passes) or keeps branch-free (the horizontal and affine passes).
#include "resample.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace facegate_resample {

namespace {

constexpr int kTransformScale = 64;  // VIPS_TRANSFORM_SCALE: 64 sub-pixel mask positions (+1)
constexpr int kShift = 12;           // VIPS_INTERPOLATE_SHIFT
constexpr int kScale = 1 << kShift;  // 4096: fixed-point one
constexpr int kRound = kScale >> 1;  // 2048: added before >> 12
constexpr int kFatStrip = 16;        // vips__fatstrip_height: rows per strip
constexpr int kTile = 128;           // vips__tile_width / height (SMALLTILE demand)

// ---------------------------------------------------------------------------------------------
// Plans: pure functions of (region size, output size)

// Compressed taps: output k reads source indices start[k] .. start[k] + len[k] - 1 with weights
// coef[off[k] .. off[k] + len[k] - 1].
struct Taps {
  int count = 0;
  int maxLen = 0;
  std::vector<int> start;
  std::vector<int> len;
  std::vector<int> off;
  std::vector<std::int32_t> coef;
};

// One axis of vips_reducev / vips_reduceh, including the integer box pre-shrink.
struct ReducePlan {
  int box = 1;       // integer box pre-shrink factor (vips_shrinkv / vips_shrinkh); 1 = none
  int boxSize = 0;   // size after the box shrink: ceil(in / box)
  int outSize = 0;   // size after the reduce
  bool reduce = false;  // false when the residual shrink is exactly 1.0
  double shrink = 1.0;  // residual shrink after the box
  int n = 1;            // mask length
  double offset = 0.0;
  std::vector<std::int32_t> masks;  // (kTransformScale + 1) masks of n taps
};

// vips_affine with the bilinear interpolator: per output column / row the two clamped source
// indices and the 12-bit fraction.
struct AffinePlan {
  std::vector<int> x0, x1, fx;
  std::vector<int> y0, y1, fy;
};

struct Plan {
  bool hasV = false, hasH = false, hasVTaps = false, hasHTaps = false, hasAffine = false;
  ReducePlan v;  // vertical (vips_reducev), runs first
  ReducePlan h;  // horizontal (vips_reduceh)
  Taps vTaps;    // may hold extra "boundary" rows after the first vOut rows (see MakePlan)
  Taps hTaps;
  int vOut = 0;  // height after the vertical stage
  int hOut = 0;  // width after the horizontal stage
  AffinePlan affine;
};

// vips_reduce_make_mask() for the linear kernel at the 65 sub-pixel positions, normalised by the
// sum and then truncated (a C cast, as libvips does) to 12 bits.
std::vector<std::int32_t> LinearMasks(int n, double shrink) {
  std::vector<std::int32_t> masks(static_cast<std::size_t>(kTransformScale + 1) * n);
  std::vector<double> c(n);
  for (int t = 0; t <= kTransformScale; ++t) {
    // libvips computes the position as a float: (float) t / VIPS_TRANSFORM_SCALE.
    const double x = static_cast<float>(static_cast<double>(t) / kTransformScale);
    const double half = x + n / 2.0 - 1;
    double sum = 0.0;
    for (int i = 0; i < n; ++i) {
      const double ax = std::fabs((i - half) / shrink);
      const double l = ax < 1.0 ? 1.0 - ax : 0.0;
      c[i] = l;
      sum += l;
    }
    for (int i = 0; i < n; ++i) {
      masks[static_cast<std::size_t>(t) * n + i] = static_cast<std::int32_t>(std::trunc((c[i] / sum) * kScale));
    }
  }
  return masks;
}

// The build step of vips_reducev / vips_reduceh with vips_resize's default gap of 2.0.
ReducePlan PlanReduce(int inSize, double shrinkIn) {
  ReducePlan p;
  double shrink = shrinkIn;
  p.outSize = static_cast<int>(std::floor(inSize / shrink + 0.5));  // VIPS_ROUND_UINT
  if (p.outSize < 1) throw std::logic_error("resample: reduce to an empty image");
  double extra = p.outSize * shrink - inSize;
  int box = std::max(1, static_cast<int>(std::floor(static_cast<double>(inSize) / p.outSize / 2.0)));
  p.boxSize = inSize;
  if (box > 1) {
    p.boxSize = (inSize + box - 1) / box;  // shrink with "ceil": the last block is edge-extended
    shrink /= box;
    extra /= box;
  } else {
    box = 1;
  }
  p.box = box;
  p.shrink = shrink;
  p.reduce = shrink != 1.0;
  p.n = p.reduce ? 2 * static_cast<int>(std::rint(shrink)) + 1 : 1;  // rint: round half to even
  p.offset = (1 + extra) / 2.0 - 1;
  if (p.reduce) p.masks = LinearMasks(p.n, shrink);
  return p;
}

// Taps for the output samples `outputs`. starts[k] is the output index at which libvips
// (re)started its floating-point position accumulator for the region that produced output k:
// a region restarts with X = (start + 0.5) * shrink - 0.5 - offset and then adds `shrink` once
// per output sample, so the same output can get a different mask index in different regions.
Taps BuildTaps(const ReducePlan& p, const std::vector<int>& outputs, const std::vector<int>& starts) {
  Taps t;
  t.count = static_cast<int>(outputs.size());
  t.start.resize(t.count);
  t.len.resize(t.count);
  t.off.resize(t.count);
  t.coef.reserve(static_cast<std::size_t>(t.count) * p.n);
  const int n = p.n;
  const int size = p.boxSize;
  const int pad = (n + 1) / 2 - 1;  // ceil(n / 2) - 1: the vips_embed() top/left margin
  std::vector<std::int32_t> ws;
  ws.reserve(n);
  int lastStart = -1;
  int lastO = -1;
  double X = 0;
  for (int k = 0; k < t.count; ++k) {
    const int o = outputs[k];
    const int s = starts[k];
    if (s != lastStart || o != lastO + 1) {
      X = (s + 0.5) * p.shrink - 0.5 - p.offset;
      for (int j = s; j < o; ++j) X += p.shrink;
      lastStart = s;
    } else {
      X += p.shrink;
    }
    lastO = o;
    const int ix = static_cast<int>(X);
    const int sx = static_cast<int>(X * kTransformScale * 2);
    const int tx = ((sx & (kTransformScale * 2 - 1)) + 1) >> 1;
    const std::int32_t* mask = &p.masks[static_cast<std::size_t>(tx) * n];
    // Clamping to the image (edge copy) makes source indices non-decreasing and contiguous:
    // merge equal neighbours (exact, integer sums) and trim zero weights at both ends.
    ws.clear();
    int lo = -1;
    int prev = -1;
    for (int i = 0; i < n; ++i) {
      const int si = std::clamp(ix + i - pad, 0, size - 1);
      if (si == prev) {
        ws.back() += mask[i];
      } else {
        if (lo < 0) lo = si;
        ws.push_back(mask[i]);
        prev = si;
      }
    }
    int a0 = 0;
    int a1 = static_cast<int>(ws.size()) - 1;
    while (a0 < a1 && ws[a0] == 0) ++a0;
    while (a1 > a0 && ws[a1] == 0) --a1;
    t.start[k] = lo + a0;
    t.len[k] = a1 - a0 + 1;
    t.off[k] = static_cast<int>(t.coef.size());
    t.maxLen = std::max(t.maxLen, t.len[k]);
    for (int z = a0; z <= a1; ++z) t.coef.push_back(ws[z]);
  }
  return t;
}

std::vector<int> Iota(int n) {
  std::vector<int> a(n);
  for (int i = 0; i < n; ++i) a[i] = i;
  return a;
}

// Region start of every output when regions are `period` long (0: one region for everything).
std::vector<int> PeriodicStarts(int n, int period) {
  std::vector<int> a(n);
  for (int i = 0; i < n; ++i) a[i] = period > 0 ? i - i % period : 0;
  return a;
}

// vips_affine(in, a, 0, 0, d, interpolate = bilinear, idx = idy = 0.5, extend = copy): output
// column X samples x = X * ia - 0.5 with ia = (1 / (a * d)) * d, accumulated with += ia along a
// region row (restarting at the left edge of every region, `xPeriod` wide; 0 = full width);
// rows are computed directly. The interpolator works in the input embedded with a 1-px border,
// so the 12-bit fraction is taken from x + 1.
AffinePlan PlanAffine(int w, int h, double a, double d, int ow, int oh, int xPeriod) {
  const double det = 1.0 / (a * d);
  const double ia = det * d;
  const double id = det * a;
  constexpr int kBorder = 1;
  AffinePlan p;
  p.x0.resize(ow);
  p.x1.resize(ow);
  p.fx.resize(ow);
  double x = 0;
  for (int X = 0; X < ow; ++X) {
    if (X == 0 || (xPeriod > 0 && X % xPeriod == 0)) x = ia * X - 0.5 + kBorder;
    const int ix = static_cast<int>(x);
    p.fx[X] = static_cast<int>((x - ix) * kScale);
    p.x0[X] = std::clamp(ix - kBorder, 0, w - 1);
    p.x1[X] = std::clamp(ix + 1 - kBorder, 0, w - 1);
    x += ia;
  }
  p.y0.resize(oh);
  p.y1.resize(oh);
  p.fy.resize(oh);
  for (int Y = 0; Y < oh; ++Y) {
    const double y = id * Y - 0.5 + kBorder;
    const int iy = static_cast<int>(y);
    p.fy[Y] = static_cast<int>((y - iy) * kScale);
    p.y0[Y] = std::clamp(iy - kBorder, 0, h - 1);
    p.y1[Y] = std::clamp(iy + 1 - kBorder, 0, h - 1);
  }
  return p;
}

Plan MakePlan(int w, int h, int ow, int oh) {
  Plan plan;
  // sharp's ResolveShrink for fit: fill is hshrink = w / ow; it then calls
  // vips_resize(1 / hshrink, vscale: 1 / vshrink). Keep that double round trip.
  const double hscale = std::max(1.0 / (static_cast<double>(w) / ow), 1.0 / w);
  const double vscale = std::max(1.0 / (static_cast<double>(h) / oh), 1.0 / h);
  plan.hasV = vscale < 1.0;
  plan.hasH = hscale < 1.0;
  if (plan.hasV) plan.v = PlanReduce(h, 1.0 / vscale);
  if (plan.hasH) plan.h = PlanReduce(w, 1.0 / hscale);
  plan.vOut = plan.hasV ? plan.v.outSize : h;
  plan.hOut = plan.hasH ? plan.h.outSize : w;
  // vips_shrinkv asks for SMALLTILE demand, so the sink then works in 128x128 tiles; otherwise
  // the pipeline is FATSTRIP: full-width strips 16 rows high.
  const bool smallTile = plan.hasV && plan.v.box > 1;
  const bool upX = hscale > 1.0;
  const bool upY = vscale > 1.0;
  const bool up = upX || upY;

  std::vector<int> affineRowRemap;
  if (plan.hasV && plan.v.reduce) {
    plan.hasVTaps = true;
    if (upX) {
      // The consumer is vips_affine: each affine output strip [t, t + T) prepares reducev rows
      // from t - 1, so row t - 1 exists twice, computed from two different region starts. The
      // second version is appended after the vOut regular rows.
      const int T = smallTile ? kTile : kFatStrip;
      std::vector<int> outs;
      std::vector<int> starts;
      for (int o = 0; o < plan.vOut; ++o) {
        outs.push_back(o);
        starts.push_back(std::max(0, o - o % T - 1));
      }
      affineRowRemap.assign(plan.vOut, -1);
      for (int t = T; t < plan.vOut; t += T) {
        affineRowRemap[t] = static_cast<int>(outs.size());
        outs.push_back(t - 1);
        starts.push_back(t - 1);
      }
      plan.vTaps = BuildTaps(plan.v, outs, starts);
    } else {
      // The consumer is vips_shrinkh (always 16-row requests), or reduceh / the sink (tile height).
      const int period = plan.hasH && plan.h.box > 1 ? kFatStrip : smallTile ? kTile : kFatStrip;
      plan.vTaps = BuildTaps(plan.v, Iota(plan.vOut), PeriodicStarts(plan.vOut, period));
    }
  }
  if (plan.hasH && plan.h.reduce) {
    plan.hasHTaps = true;
    // reduceh regions are whole-width strips, except 128-px wide tiles under SMALLTILE.
    plan.hTaps = BuildTaps(plan.h, Iota(plan.hOut), PeriodicStarts(plan.hOut, smallTile && !up ? kTile : 0));
  }
  if (up) {
    plan.hasAffine = true;
    const double a = upX ? hscale : 1.0;
    const double d = upY ? vscale : 1.0;
    plan.affine = PlanAffine(plan.hOut, plan.vOut, a, d, upX ? ow : plan.hOut, upY ? oh : plan.vOut,
                             smallTile ? kTile : 0);
    if (!affineRowRemap.empty()) {
      // Affine row t (the first of a strip) reads row t - 1 through its own strip's reducev region.
      for (int Y = 0; Y < static_cast<int>(plan.affine.y0.size()); ++Y) {
        const int r = affineRowRemap[Y];
        if (r < 0) continue;
        if (plan.affine.y0[Y] == Y - 1) plan.affine.y0[Y] = r;
        if (plan.affine.y1[Y] == Y - 1) plan.affine.y1[Y] = r;
      }
    }
  }

  // The stages must land exactly on the requested size, or the kernels below would write out of
  // bounds. libvips computes the same sizes, so this never fires for valid input.
  const int finalW = plan.hasAffine ? static_cast<int>(plan.affine.fx.size()) : plan.hOut;
  const int finalH = plan.hasAffine ? static_cast<int>(plan.affine.fy.size()) : plan.vOut;
  if (finalW != ow || finalH != oh || (plan.hasVTaps && plan.vTaps.count < plan.vOut) ||
      (plan.hasHTaps && plan.hTaps.count != plan.hOut)) {
    throw std::logic_error("resample: internal size mismatch");
  }
  return plan;
}

// ---------------------------------------------------------------------------------------------
// Scratch memory, one set per thread (worker threads call this concurrently).

struct Scratch {
  std::vector<std::uint8_t> a;
  std::vector<std::uint8_t> b;
  std::vector<std::uint32_t> sums;
  std::vector<const std::uint8_t*> rows;
};

Scratch& ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}

inline std::uint8_t ClampByte(std::int32_t v) { return static_cast<std::uint8_t>(v > 255 ? 255 : v); }

// One output pixel of vips_reduceh in plain C++: `n` taps `c` over the interleaved RGB pixels
// from `p`, rounded and clamped into q[0..2].
inline void ReduceHPixel(const std::uint8_t* p, const std::int32_t* c, int n, std::uint8_t* q) {
  std::int32_t s0 = kRound, s1 = kRound, s2 = kRound;
  for (int i = 0; i < n; ++i, p += 3) {
    s0 += c[i] * p[0];
    s1 += c[i] * p[1];
    s2 += c[i] * p[2];
  }
  q[0] = ClampByte(s0 >> kShift);
  q[1] = ClampByte(s1 >> kShift);
  q[2] = ClampByte(s2 >> kShift);
}

// ---------------------------------------------------------------------------------------------
// Kernels. 3 interleaved bands, so for the vertical passes a row is just a byte vector of
// ne = width * 3 elements.

#if defined(__SSE2__)
// One output row of vips_shrinkv from the `box` input rows `rows`, x in [from, ne): the
// arithmetic of ShrinkV below, element by element (the row tails of ShrinkRowPairs).
void ShrinkRowScalar(const std::uint8_t* const* rows, int box, std::uint32_t mult, std::uint32_t amend, std::size_t from,
                     std::size_t ne, std::uint8_t* __restrict dst) {
  for (std::size_t x = from; x < ne; ++x) {
    std::uint32_t sum = amend;
    for (int j = 0; j < box; ++j) sum += rows[j][x];
    dst[x] = static_cast<std::uint8_t>((sum * mult) >> 24);
  }
}

// The widest box ShrinkRowPairs takes: its sums, box / 2 included, must stay below 2^15.
constexpr int kWidestSimdBox = 128;

// One output row of vips_shrinkv with SSE2, 16 bytes at a time, sums kept in registers as uint16
// (the box's rows read side by side, nothing written back between them). The division
// (sum * mult) >> 24 is split at 16 bits of mult = mh * 2^16 + ml:
//   floor(sum * mult / 2^24) == floor((sum * mh + floor(sum * ml / 2^16)) / 2^8),
// exact for non-negative integers; pmulhuw gives the inner floor and one pmaddwd of the pairs
// (sum, inner) by (mh, 1) the outer sum in int32. Both fit int16 as pmaddwd wants them: sum <=
// 255 * 128 + 64, and mh <= 85 for the boxes of 3 and more this is used for.
void ShrinkRowPairs(const std::uint8_t* const* rows, int box, std::uint32_t mult, std::uint32_t amend,
                    std::size_t ne, std::uint8_t* __restrict dst) {
  const __m128i zero = _mm_setzero_si128();
  const __m128i start = _mm_set1_epi16(static_cast<short>(amend));
  const __m128i multLow = _mm_set1_epi16(static_cast<short>(mult & 0xffff));
  const __m128i multHighAndOne = _mm_set1_epi32(static_cast<int>((mult >> 16) | (1u << 16)));
  std::size_t x = 0;
  for (; x + 16 <= ne; x += 16) {
    __m128i low = start;
    __m128i high = start;
    for (int j = 0; j < box; ++j) {
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[j] + x));
      low = _mm_add_epi16(low, _mm_unpacklo_epi8(bytes, zero));
      high = _mm_add_epi16(high, _mm_unpackhi_epi8(bytes, zero));
    }
    const __m128i innerLow = _mm_mulhi_epu16(low, multLow);
    const __m128i innerHigh = _mm_mulhi_epu16(high, multLow);
    const __m128i q0 = _mm_srli_epi32(_mm_madd_epi16(_mm_unpacklo_epi16(low, innerLow), multHighAndOne), 8);
    const __m128i q1 = _mm_srli_epi32(_mm_madd_epi16(_mm_unpackhi_epi16(low, innerLow), multHighAndOne), 8);
    const __m128i q2 = _mm_srli_epi32(_mm_madd_epi16(_mm_unpacklo_epi16(high, innerHigh), multHighAndOne), 8);
    const __m128i q3 = _mm_srli_epi32(_mm_madd_epi16(_mm_unpackhi_epi16(high, innerHigh), multHighAndOne), 8);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + x),
                     _mm_packus_epi16(_mm_packs_epi32(q0, q1), _mm_packs_epi32(q2, q3)));
  }
  ShrinkRowScalar(rows, box, mult, amend, x, ne, dst);
}
#endif

// vips_shrinkv, Highway path: ((sum + box/2) * floor(2^24 / box)) >> 24 in uint32 (not an exact
// division: for box 3 it can be 1 lower than (sum + 1) / 3). The bottom edge is extended by copy.
// The product stays below 2^32: sum <= 255 * box + box / 2 and mult <= 2^24 / box.
int ShrinkV(const std::uint8_t* src, std::size_t stride, std::size_t ne, int h, int box, std::uint8_t* __restrict dst,
            Scratch& scratch) {
  const int oh = (h + box - 1) / box;
  if (box == 2) {
    // floor(2^24 / 2) * (s + 1) >> 24 == (s + 1) >> 1 exactly.
    for (int oy = 0; oy < oh; ++oy) {
      const std::uint8_t* r0 = src + static_cast<std::size_t>(std::min(h - 1, oy * 2)) * stride;
      const std::uint8_t* r1 = src + static_cast<std::size_t>(std::min(h - 1, oy * 2 + 1)) * stride;
      std::uint8_t* q = dst + static_cast<std::size_t>(oy) * ne;
#pragma GCC ivdep
      for (std::size_t x = 0; x < ne; ++x) q[x] = static_cast<std::uint8_t>((r0[x] + r1[x] + 1) >> 1);
    }
    return oh;
  }
  const std::uint32_t mult = (1u << 24) / static_cast<std::uint32_t>(box);
  const std::uint32_t amend = static_cast<std::uint32_t>(box) >> 1;
#if defined(__SSE2__)
  if (box <= kWidestSimdBox) {
    if (scratch.rows.size() < static_cast<std::size_t>(box)) scratch.rows.resize(box);
    const std::uint8_t** rows = scratch.rows.data();
    for (int oy = 0; oy < oh; ++oy) {
      for (int j = 0; j < box; ++j) rows[j] = src + static_cast<std::size_t>(std::min(h - 1, oy * box + j)) * stride;
      ShrinkRowPairs(rows, box, mult, amend, ne, dst + static_cast<std::size_t>(oy) * ne);
    }
    return oh;
  }
#endif
  // Row by row into uint32 sums: wider boxes overflow the uint16 sums above.
  if (scratch.sums.size() < ne) scratch.sums.resize(ne);
  std::uint32_t* __restrict sum = scratch.sums.data();
  for (int oy = 0; oy < oh; ++oy) {
    std::fill(sum, sum + ne, amend);
    for (int j = 0; j < box; ++j) {
      const std::uint8_t* r = src + static_cast<std::size_t>(std::min(h - 1, oy * box + j)) * stride;
#pragma GCC ivdep
      for (std::size_t x = 0; x < ne; ++x) sum[x] += r[x];
    }
    std::uint8_t* q = dst + static_cast<std::size_t>(oy) * ne;
#pragma GCC ivdep
    for (std::size_t x = 0; x < ne; ++x) q[x] = static_cast<std::uint8_t>((sum[x] * mult) >> 24);
  }
  return oh;
}

// The first `full` output pixels of a row of ShrinkH (those whose block lies inside the row) for
// a box known when compiled: the same sums, unrolled, and the division by a constant multiplier.
template <int Box>
void ShrinkRowFixed(const std::uint8_t* row, int full, std::uint8_t* __restrict q) {
  constexpr std::uint32_t mult = (1u << 24) / Box;
  constexpr std::uint32_t amend = Box >> 1;
  for (int ox = 0; ox < full; ++ox) {
    const std::uint8_t* p = row + static_cast<std::size_t>(ox) * Box * 3;
    std::uint32_t s0 = amend, s1 = amend, s2 = amend;
    for (int j = 0; j < Box; ++j) {
      s0 += p[3 * j];
      s1 += p[3 * j + 1];
      s2 += p[3 * j + 2];
    }
    q[ox * 3] = static_cast<std::uint8_t>((s0 * mult) >> 24);
    q[ox * 3 + 1] = static_cast<std::uint8_t>((s1 * mult) >> 24);
    q[ox * 3 + 2] = static_cast<std::uint8_t>((s2 * mult) >> 24);
  }
}

// vips_shrinkh, Highway path: the same arithmetic along x; the right edge is extended by copy.
int ShrinkH(const std::uint8_t* src, std::size_t stride, int w, int rows, int box, std::uint8_t* __restrict dst) {
  const int ow = (w + box - 1) / box;
  const std::uint32_t mult = (1u << 24) / static_cast<std::uint32_t>(box);
  const std::uint32_t amend = static_cast<std::uint32_t>(box) >> 1;
  const int full = w / box;  // output pixels whose block lies entirely inside the row
  for (int y = 0; y < rows; ++y) {
    const std::uint8_t* row = src + static_cast<std::size_t>(y) * stride;
    std::uint8_t* q = dst + static_cast<std::size_t>(y) * ow * 3;
    if (box == 2) {
      for (int i = 0; i < full * 3; i += 3) {
        const std::uint8_t* p = row + 2 * i;
        q[i] = static_cast<std::uint8_t>((p[0] + p[3] + 1) >> 1);
        q[i + 1] = static_cast<std::uint8_t>((p[1] + p[4] + 1) >> 1);
        q[i + 2] = static_cast<std::uint8_t>((p[2] + p[5] + 1) >> 1);
      }
    }
    // One output pixel: the mean of `box` input pixels, the one at `x` clamped to the row where
    // `clamp` (the last block may run past the edge; no other does, so it skips the clamp).
    const auto mean = [&](int ox, bool clamp) {
      std::uint32_t s0 = amend, s1 = amend, s2 = amend;
      for (int j = 0; j < box; ++j) {
        const int x = clamp ? std::min(w - 1, ox * box + j) : ox * box + j;
        const std::uint8_t* p = row + static_cast<std::size_t>(x) * 3;
        s0 += p[0];
        s1 += p[1];
        s2 += p[2];
      }
      q[ox * 3] = static_cast<std::uint8_t>((s0 * mult) >> 24);
      q[ox * 3 + 1] = static_cast<std::uint8_t>((s1 * mult) >> 24);
      q[ox * 3 + 2] = static_cast<std::uint8_t>((s2 * mult) >> 24);
    };
    switch (box) {
      case 2: break;
      case 3: ShrinkRowFixed<3>(row, full, q); break;
      case 4: ShrinkRowFixed<4>(row, full, q); break;
      case 5: ShrinkRowFixed<5>(row, full, q); break;
      case 6: ShrinkRowFixed<6>(row, full, q); break;
      case 7: ShrinkRowFixed<7>(row, full, q); break;
      case 8: ShrinkRowFixed<8>(row, full, q); break;
      default:
        for (int ox = 0; ox < full; ++ox) mean(ox, false);
    }
    for (int ox = full; ox < ow; ++ox) mean(ox, true);
  }
  return ow;
}

// One output row of vips_reducev, plain C++: a multiply-add over bytes that gcc vectorises
// (uint8 -> int32 widening). Used for the row tails, and for everything on non-x86 builds.
void ReduceRowScalar(const std::uint8_t* const* rows, const std::int32_t* coef, int n, std::size_t from,
                     std::size_t ne, std::uint8_t* __restrict dst) {
  for (std::size_t x = from; x < ne; ++x) {
    std::int32_t s = kRound;
    for (int i = 0; i < n; ++i) s += coef[i] * rows[i][x];
    dst[x] = ClampByte(s >> kShift);
  }
}

#if defined(__SSE2__)
// The same with SSE2 (part of the x86-64 baseline, so no -march is needed). gcc's own
// vectorisation of the loop above has to emulate 32-bit multiplies with pmuludq on SSE2 and
// ran ~5x slower. Here taps are taken in pairs: interleaving the bytes of two rows and
// zero-extending them to int16 lets one pmaddwd compute c_a * a + c_b * b for 4 pixels in
// int32. Exact: pixels <= 255 and weights <= 4096 fit int16, and every sum stays below 2^20.
// `rows` and `coef` hold 2 * P entries (an odd tap count is padded with a zero weight).
template <int P>
void ReduceRowPairs(const std::uint8_t* const* rows, const std::int32_t* coef, std::size_t ne,
                    std::uint8_t* __restrict dst) {
  __m128i weights[P];
  for (int p = 0; p < P; ++p) {
    const std::uint32_t lo = static_cast<std::uint16_t>(coef[2 * p]);
    const std::uint32_t hi = static_cast<std::uint16_t>(coef[2 * p + 1]);
    weights[p] = _mm_set1_epi32(static_cast<int>(lo | (hi << 16)));
  }
  const __m128i zero = _mm_setzero_si128();
  const __m128i round = _mm_set1_epi32(kRound);
  std::size_t x = 0;
  for (; x + 16 <= ne; x += 16) {
    __m128i s0 = round, s1 = round, s2 = round, s3 = round;
    for (int p = 0; p < P; ++p) {
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[2 * p] + x));
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[2 * p + 1] + x));
      const __m128i lo = _mm_unpacklo_epi8(a, b);  // a0 b0 a1 b1 ... a7 b7
      const __m128i hi = _mm_unpackhi_epi8(a, b);
      s0 = _mm_add_epi32(s0, _mm_madd_epi16(_mm_unpacklo_epi8(lo, zero), weights[p]));
      s1 = _mm_add_epi32(s1, _mm_madd_epi16(_mm_unpackhi_epi8(lo, zero), weights[p]));
      s2 = _mm_add_epi32(s2, _mm_madd_epi16(_mm_unpacklo_epi8(hi, zero), weights[p]));
      s3 = _mm_add_epi32(s3, _mm_madd_epi16(_mm_unpackhi_epi8(hi, zero), weights[p]));
    }
    // >> 12, then saturating packs: the unsigned byte pack clamps to 255 like ClampByte.
    const __m128i w0 = _mm_packs_epi32(_mm_srai_epi32(s0, kShift), _mm_srai_epi32(s1, kShift));
    const __m128i w1 = _mm_packs_epi32(_mm_srai_epi32(s2, kShift), _mm_srai_epi32(s3, kShift));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + x), _mm_packus_epi16(w0, w1));
  }
  ReduceRowScalar(rows, coef, 2 * P, x, ne, dst);
}
#endif

// vips_reducev: every output row is an integer combination of (box-shrunk) input rows.
void ReduceV(const std::uint8_t* src, std::size_t stride, std::size_t ne, const Taps& taps, std::uint8_t* dst) {
  const std::size_t capacity = static_cast<std::size_t>(taps.maxLen) + 1;
  std::vector<const std::uint8_t*> rows(capacity);
  std::vector<std::int32_t> coef(capacity);
  for (int k = 0; k < taps.count; ++k) {
    const int n = taps.len[k];
    for (int i = 0; i < n; ++i) {
      rows[i] = src + static_cast<std::size_t>(taps.start[k] + i) * stride;
      coef[i] = taps.coef[taps.off[k] + i];
    }
    // Pad to an even count with a zero weight on a row that exists.
    rows[n] = rows[n - 1];
    coef[n] = 0;
    std::uint8_t* q = dst + static_cast<std::size_t>(k) * ne;
#if defined(__SSE2__)
    switch ((n + 1) / 2) {
      case 1: ReduceRowPairs<1>(rows.data(), coef.data(), ne, q); continue;
      case 2: ReduceRowPairs<2>(rows.data(), coef.data(), ne, q); continue;
      case 3: ReduceRowPairs<3>(rows.data(), coef.data(), ne, q); continue;
      case 4: ReduceRowPairs<4>(rows.data(), coef.data(), ne, q); continue;
      case 5: ReduceRowPairs<5>(rows.data(), coef.data(), ne, q); continue;
      default: break;
    }
#endif
    ReduceRowScalar(rows.data(), coef.data(), n, 0, ne, q);
  }
}

#if defined(__SSE2__)
// vips_reduceh with SSE2 for outputs of up to 4 * G taps. For a group of 4 taps starting at
// pixel s, one 16-byte load holds r0 g0 b0 r1 g1 b1 r2 g2 b2 r3 g3 b3 (and 4 bytes we give zero
// weight). Interleaving it with itself shifted by one pixel pairs up taps of the same band:
//   r0 r1 g0 g1 b0 b1 . .   (taps 0 and 1)     r2 r3 g2 g3 b2 b3 . .   (taps 2 and 3)
// so two pmaddwd give R, G, B (and a zero lane) in int32, exact as in ReduceV. `weights` holds,
// per output and group, [c0 c1 c0 c1 c0 c1 0 0] and [c2 c3 c2 c3 c2 c3 0 0] as int16.
// Outputs whose loads would reach past the end of their row (`simd[k]` false) use the scalar path.
template <int G>
void ReduceHPairs(const std::uint8_t* src, std::size_t stride, int rows, int ow, const int* first,
                  const std::int16_t* weights, const std::uint8_t* simd, const std::int32_t* coef, int N,
                  std::uint8_t* __restrict dst) {
  const __m128i zero = _mm_setzero_si128();
  const __m128i round = _mm_set1_epi32(kRound);
  for (int y = 0; y < rows; ++y) {
    const std::uint8_t* row = src + static_cast<std::size_t>(y) * stride;
    std::uint8_t* q = dst + static_cast<std::size_t>(y) * ow * 3;
    for (int k = 0; k < ow; ++k, q += 3) {
      const std::uint8_t* p = row + first[k];
      if (!simd[k]) {
        ReduceHPixel(p, coef + static_cast<std::size_t>(k) * N, N, q);
        continue;
      }
      const __m128i* w = reinterpret_cast<const __m128i*>(weights) + static_cast<std::size_t>(k) * 2 * G;
      __m128i sum = round;
      for (int g = 0; g < G; ++g) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 12 * g));
        const __m128i taps01 = _mm_unpacklo_epi8(v, _mm_srli_si128(v, 3));
        const __m128i taps23 = _mm_unpacklo_epi8(_mm_srli_si128(v, 6), _mm_srli_si128(v, 9));
        const __m128i both = _mm_unpacklo_epi64(taps01, taps23);
        sum = _mm_add_epi32(sum, _mm_madd_epi16(_mm_unpacklo_epi8(both, zero), _mm_loadu_si128(w + 2 * g)));
        sum = _mm_add_epi32(sum, _mm_madd_epi16(_mm_unpackhi_epi8(both, zero), _mm_loadu_si128(w + 2 * g + 1)));
      }
      const __m128i words = _mm_packs_epi32(_mm_srai_epi32(sum, kShift), zero);
      const std::uint32_t rgb = static_cast<std::uint32_t>(_mm_cvtsi128_si32(_mm_packus_epi16(words, zero)));
      q[0] = static_cast<std::uint8_t>(rgb);
      q[1] = static_cast<std::uint8_t>(rgb >> 8);
      q[2] = static_cast<std::uint8_t>(rgb >> 16);
    }
  }
}
#endif

// Plain C++ vips_reduceh with every output padded to N taps (non-x86 builds).
template <int N>
void ReduceHFixed(const std::uint8_t* src, std::size_t stride, int rows, int ow, const int* first,
                  const std::int32_t* coef, std::uint8_t* __restrict dst) {
  for (int y = 0; y < rows; ++y) {
    const std::uint8_t* row = src + static_cast<std::size_t>(y) * stride;
    std::uint8_t* q = dst + static_cast<std::size_t>(y) * ow * 3;
    for (int k = 0; k < ow; ++k) {
      ReduceHPixel(row + first[k], coef + static_cast<std::size_t>(k) * N, N, q + 3 * k);
    }
  }
}

void ReduceHGeneric(const std::uint8_t* src, std::size_t stride, int rows, const Taps& taps, std::uint8_t* dst) {
  const int ow = taps.count;
  for (int y = 0; y < rows; ++y) {
    const std::uint8_t* row = src + static_cast<std::size_t>(y) * stride;
    std::uint8_t* q = dst + static_cast<std::size_t>(y) * ow * 3;
    for (int k = 0; k < ow; ++k) {
      ReduceHPixel(row + static_cast<std::size_t>(taps.start[k]) * 3, &taps.coef[taps.off[k]], taps.len[k], q + 3 * k);
    }
  }
}

// vips_reduceh on 3-band rows of width w.
void ReduceH(const std::uint8_t* src, std::size_t stride, int w, int rows, const Taps& taps, std::uint8_t* dst) {
  const int ow = taps.count;
  const int maxLen = taps.maxLen;
  if (maxLen < 1 || maxLen > 8 || maxLen > w) {
    ReduceHGeneric(src, stride, rows, taps, dst);
    return;
  }
  // Pad every output to N taps (a multiple of 4 for the SIMD groups). Zero weights change no
  // sum, so this is exact. Taps that would run past the row end are shifted left.
  const int N = std::min(w, maxLen <= 4 ? 4 : 8);
  std::vector<int> first(ow);
  std::vector<std::int32_t> coef(static_cast<std::size_t>(ow) * N, 0);
  for (int k = 0; k < ow; ++k) {
    int s = taps.start[k];
    const int shift = std::max(0, s + N - w);  // afterwards s + N <= w, and s >= 0 since N <= w
    s -= shift;
    for (int i = 0; i < taps.len[k]; ++i) coef[static_cast<std::size_t>(k) * N + shift + i] = taps.coef[taps.off[k] + i];
    first[k] = s * 3;
  }
#if defined(__SSE2__)
  if (N % 4 == 0) {
    const int groups = N / 4;
    // The int16 weight vectors: 2 per group per output, 8 lanes each.
    std::vector<std::int16_t> weights(static_cast<std::size_t>(ow) * groups * 16, 0);
    std::vector<std::uint8_t> simd(ow);
    const std::size_t rowBytes = static_cast<std::size_t>(w) * 3;
    for (int k = 0; k < ow; ++k) {
      for (int g = 0; g < groups; ++g) {
        const std::int32_t* c = &coef[static_cast<std::size_t>(k) * N + 4 * g];
        std::int16_t* lanes = &weights[(static_cast<std::size_t>(k) * groups + g) * 16];
        for (int band = 0; band < 3; ++band) {
          lanes[2 * band] = static_cast<std::int16_t>(c[0]);
          lanes[2 * band + 1] = static_cast<std::int16_t>(c[1]);
          lanes[8 + 2 * band] = static_cast<std::int16_t>(c[2]);
          lanes[8 + 2 * band + 1] = static_cast<std::int16_t>(c[3]);
        }
      }
      // The last 16-byte load starts 12 * (groups - 1) bytes after the first tap.
      simd[k] = static_cast<std::size_t>(first[k]) + 12 * (groups - 1) + 16 <= rowBytes;
    }
    const std::int16_t* w16 = weights.data();
    if (groups == 1) {
      ReduceHPairs<1>(src, stride, rows, ow, first.data(), w16, simd.data(), coef.data(), N, dst);
    } else {
      ReduceHPairs<2>(src, stride, rows, ow, first.data(), w16, simd.data(), coef.data(), N, dst);
    }
    return;
  }
#endif
  switch (N) {
    case 1: ReduceHFixed<1>(src, stride, rows, ow, first.data(), coef.data(), dst); break;
    case 2: ReduceHFixed<2>(src, stride, rows, ow, first.data(), coef.data(), dst); break;
    case 3: ReduceHFixed<3>(src, stride, rows, ow, first.data(), coef.data(), dst); break;
    case 4: ReduceHFixed<4>(src, stride, rows, ow, first.data(), coef.data(), dst); break;
    case 5: ReduceHFixed<5>(src, stride, rows, ow, first.data(), coef.data(), dst); break;
    case 6: ReduceHFixed<6>(src, stride, rows, ow, first.data(), coef.data(), dst); break;
    case 7: ReduceHFixed<7>(src, stride, rows, ow, first.data(), coef.data(), dst); break;
    default: ReduceHFixed<8>(src, stride, rows, ow, first.data(), coef.data(), dst); break;
  }
}

// vips_interpolate_bilinear, uchar fixed-point path. The four weights are derived from FX and
// FY exactly as libvips does (c4 = FY*FX >> 12 etc.): this is not a separable filter bit-wise.
// Weights sum to 4096, so the result never exceeds 255.
void Affine(const std::uint8_t* src, std::size_t stride, int w, const AffinePlan& a, std::uint8_t* __restrict dst) {
  const int ow = static_cast<int>(a.fx.size());
  const int oh = static_cast<int>(a.fy.size());
  std::vector<int> left(ow), right(ow);
  for (int X = 0; X < ow; ++X) {
    left[X] = a.x0[X] * 3;
    right[X] = a.x1[X] * 3;
  }
#if defined(__SSE2__)
  // The SIMD path needs the two source pixels side by side (not clamped onto one another at
  // the edges) and its 8-byte load inside the row.
  std::vector<std::uint8_t> pairs(ow);
  for (int X = 0; X < ow; ++X) pairs[X] = a.x1[X] == a.x0[X] + 1 && left[X] + 8 <= w * 3;
  const __m128i zero = _mm_setzero_si128();
  const __m128i round = _mm_set1_epi32(kRound);
#else
  (void)w;
#endif
  for (int Y = 0; Y < oh; ++Y) {
    const std::int32_t FY = a.fy[Y];
    const std::int32_t notFY = kScale - FY;
    const std::uint8_t* r0 = src + static_cast<std::size_t>(a.y0[Y]) * stride;
    const std::uint8_t* r1 = src + static_cast<std::size_t>(a.y1[Y]) * stride;
    std::uint8_t* q = dst + static_cast<std::size_t>(Y) * ow * 3;
    for (int X = 0; X < ow; ++X) {
      const std::int32_t FX = a.fx[X];
      const std::int32_t c4 = (FY * FX) >> kShift;
      const std::int32_t c2 = (notFY * FX) >> kShift;
      const std::int32_t c3 = FY - c4;
      const std::int32_t c1 = notFY - c2;
#if defined(__SSE2__)
      if (pairs[X]) {
        // Pixels x0 and x0 + 1 of both rows: 8-byte loads, each interleaved with itself shifted
        // by one pixel (r r' g g' b b' . .), so pmaddwd gives c1 p1 + c2 p2 per band in int32
        // for the top row and c3 p3 + c4 p4 for the bottom one. Exact: all values fit int16.
        const __m128i top = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(r0 + left[X]));
        const __m128i bottom = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(r1 + left[X]));
        const __m128i both = _mm_unpacklo_epi64(_mm_unpacklo_epi8(top, _mm_srli_si128(top, 3)),
                                                _mm_unpacklo_epi8(bottom, _mm_srli_si128(bottom, 3)));
        const __m128i wTop = _mm_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(c1) | (static_cast<std::uint32_t>(c2) << 16)));
        const __m128i wBottom = _mm_set1_epi32(static_cast<int>(static_cast<std::uint32_t>(c3) | (static_cast<std::uint32_t>(c4) << 16)));
        __m128i sum = _mm_add_epi32(_mm_madd_epi16(_mm_unpacklo_epi8(both, zero), wTop),
                                    _mm_madd_epi16(_mm_unpackhi_epi8(both, zero), wBottom));
        sum = _mm_srai_epi32(_mm_add_epi32(sum, round), kShift);
        const std::uint32_t rgb =
            static_cast<std::uint32_t>(_mm_cvtsi128_si32(_mm_packus_epi16(_mm_packs_epi32(sum, zero), zero)));
        q[3 * X] = static_cast<std::uint8_t>(rgb);
        q[3 * X + 1] = static_cast<std::uint8_t>(rgb >> 8);
        q[3 * X + 2] = static_cast<std::uint8_t>(rgb >> 16);
        continue;
      }
#endif
      const std::uint8_t* p1 = r0 + left[X];
      const std::uint8_t* p2 = r0 + right[X];
      const std::uint8_t* p3 = r1 + left[X];
      const std::uint8_t* p4 = r1 + right[X];
      for (int b = 0; b < 3; ++b) {
        q[3 * X + b] = static_cast<std::uint8_t>((c1 * p1[b] + c2 * p2[b] + c3 * p3[b] + c4 * p4[b] + kRound) >> kShift);
      }
    }
  }
}

}  // namespace

void ResizeLikeLibvips(const ImageView& image, const Region& region, int outWidth, int outHeight,
                       std::uint8_t* out) {
  const Plan plan = MakePlan(region.width, region.height, outWidth, outHeight);
  Scratch& scratch = ThreadScratch();

  // The current image: `cur` with rows `stride` bytes apart, cw pixels wide.
  const std::size_t srcStride = static_cast<std::size_t>(image.width) * 3;
  const std::uint8_t* cur =
      image.data + static_cast<std::size_t>(region.y) * srcStride + static_cast<std::size_t>(region.x) * 3;
  std::size_t stride = srcStride;
  int cw = region.width;
  int ch = region.height;
  const std::size_t ne = static_cast<std::size_t>(region.width) * 3;
  bool wroteOut = false;

  // A scratch buffer of at least `bytes` that does not hold the current image.
  auto other = [&](std::size_t bytes) -> std::uint8_t* {
    std::vector<std::uint8_t>& buffer = (!scratch.a.empty() && cur == scratch.a.data()) ? scratch.b : scratch.a;
    if (buffer.size() < bytes) buffer.resize(bytes);
    return buffer.data();
  };

  if (plan.hasV) {
    if (plan.v.box > 1) {
      std::uint8_t* dst = other(ne * plan.v.boxSize);
      ch = ShrinkV(cur, stride, ne, ch, plan.v.box, dst, scratch);
      cur = dst;
      stride = ne;
    }
    if (plan.hasVTaps) {
      const bool last = !plan.hasAffine && !plan.hasH;  // then vTaps.count == vOut == outHeight
      std::uint8_t* dst = last ? out : other(ne * plan.vTaps.count);
      ReduceV(cur, stride, ne, plan.vTaps, dst);
      cur = dst;
      stride = ne;
      wroteOut = last;
    }
    ch = plan.vOut;
  }
  const int rows = plan.hasVTaps ? plan.vTaps.count : ch;  // may include the affine's extra rows
  if (plan.hasH) {
    if (plan.h.box > 1) {
      const int bw = (cw + plan.h.box - 1) / plan.h.box;
      const bool last = !plan.hasAffine && !plan.hasHTaps;
      std::uint8_t* dst = last ? out : other(static_cast<std::size_t>(bw) * 3 * rows);
      cw = ShrinkH(cur, stride, cw, rows, plan.h.box, dst);
      cur = dst;
      stride = static_cast<std::size_t>(cw) * 3;
      wroteOut = last;
    }
    if (plan.hasHTaps) {
      const bool last = !plan.hasAffine;
      std::uint8_t* dst = last ? out : other(static_cast<std::size_t>(plan.hOut) * 3 * rows);
      ReduceH(cur, stride, cw, rows, plan.hTaps, dst);
      cur = dst;
      stride = static_cast<std::size_t>(plan.hOut) * 3;
      wroteOut = last;
    }
    cw = plan.hOut;
  }
  if (plan.hasAffine) {
    Affine(cur, stride, cw, plan.affine, out);
  } else if (!wroteOut) {
    // Nothing resampled (output size == region size) or the last stage wrote to scratch.
    const std::size_t rowBytes = static_cast<std::size_t>(outWidth) * 3;
    for (int y = 0; y < outHeight; ++y) std::memcpy(out + y * rowBytes, cur + y * stride, rowBytes);
  }
}

}  // namespace facegate_resample
