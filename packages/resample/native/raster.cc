// Bit-exact ports of separableResize and resampleAffine (packages/pipeline/src/image/raster.ts).
//
// Exactness rules followed here (do not "simplify" them):
//  * every JS number is a double, every Float32Array element a float: the taps' weights are
//    rounded to float when stored (and the normalising total is the sum of the *unrounded*
//    weights, as in axisTaps), and the horizontal pass's sums are rounded to float rows;
//  * every sum adds its terms in the JS order (taps firstTap..endTap); the loops may run over
//    output pixels / channels in another order, never reorder the terms of one sum;
//  * no FMA contraction (binding.gyp: -ffp-contract=off), no -ffast-math;
//  * roundChannel(v) = v < 0.5 ? 0 : (v + 0.5) | 0, and Uint8Array stores truncate.
#include "raster.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace facegate_resample {

namespace {

// Byte -> double by table: the same values as the conversion, without an int -> double
// conversion instruction per channel (a throughput bottleneck of the bilinear loop).
struct ByteToDouble {
  double value[256];
  ByteToDouble() {
    for (int byte = 0; byte < 256; byte++) value[byte] = byte;
  }
};
const ByteToDouble kByteToDouble;

// roundChannel of raster.ts for the values that occur here (below 2^31); NaN gives 0 as in JS
// ((NaN + 0.5) | 0 === 0).
inline int RoundChannel(double value) {
  if (value < 0.5) return 0;
  const double shifted = value + 0.5;
  if (!(shifted < 2147483648.0)) return shifted == shifted ? 0x7fffffff : 0;  // never reached for pixels
  return static_cast<int>(shifted);
}

// axisTaps of raster.ts.
struct AxisTaps {
  int tapCount = 0;
  std::vector<int> indices;
  std::vector<float> weights;
  std::vector<int> firstTap;
  std::vector<int> endTap;
};

void BuildAxisTaps(double start, double length, int outLength, int sourceLength, bool antialias, bool hasFill,
                   AxisTaps& taps) {
  const double scale = length / outLength;
  const double support = antialias && scale > 1 ? scale : 1;
  const int tapCount = static_cast<int>(std::ceil(support)) * 2 + 1;
  const std::size_t total = static_cast<std::size_t>(outLength) * static_cast<std::size_t>(tapCount);
  taps.tapCount = tapCount;
  taps.indices.assign(total, 0);
  taps.weights.assign(total, 0.0f);
  taps.firstTap.assign(outLength, 0);
  taps.endTap.assign(outLength, 0);
  const double lastIndex = sourceLength - 1;
  for (int out = 0; out < outLength; out++) {
    const double centre = start + (out + 0.5) * scale - 0.5;
    const double first = std::ceil(centre - support);
    const std::size_t base = static_cast<std::size_t>(out) * tapCount;
    double sum = 0;
    for (int tap = 0; tap < tapCount; tap++) {
      const double position = first + tap;
      const double weight = std::max(0.0, 1 - std::abs(position - centre) / support);
      int index;
      if (position < 0 || position >= sourceLength) {
        const bool nearEdge = centre >= -0.5 && centre <= sourceLength - 0.5;
        index = hasFill && !nearEdge ? -1 : static_cast<int>(std::min(std::max(position, 0.0), lastIndex));
      } else {
        index = static_cast<int>(position);
      }
      taps.indices[base + tap] = index;
      taps.weights[base + tap] = static_cast<float>(weight);
      sum += weight;
    }
    for (int tap = 0; tap < tapCount; tap++) {
      float& weight = taps.weights[base + tap];
      weight = sum > 0 ? static_cast<float>(static_cast<double>(weight) / sum) : 0.0f;
    }
  }
  for (int out = 0; out < outLength; out++) {
    int first = out * tapCount;
    int end = first + tapCount;
    while (first < end && taps.weights[first] == 0) first++;
    while (end > first && taps.weights[end - 1] == 0) end--;
    taps.firstTap[out] = first;
    taps.endTap[out] = end;
  }
}

}  // namespace

void SeparableResizeLike(const ImageView& image, const FloatRect& rect, int outWidth, int outHeight, bool hasFill,
                         double fill, bool antialias, std::uint8_t* out) {
  AxisTaps columns;
  AxisTaps rows;
  BuildAxisTaps(rect.x, rect.width, outWidth, image.width, antialias, hasFill, columns);
  BuildAxisTaps(rect.y, rect.height, outHeight, image.height, antialias, hasFill, rows);

  int firstRow = image.height;
  int lastRow = -1;
  std::vector<std::uint8_t> rowNeeded(image.height, 0);
  for (std::size_t at = 0; at < rows.indices.size(); at++) {
    const int row = rows.indices[at];
    if (row >= 0 && rows.weights[at] > 0) {
      rowNeeded[row] = 1;
      firstRow = std::min(firstRow, row);
      lastRow = std::max(lastRow, row);
    }
  }
  const int rowCount = std::max(0, lastRow - firstRow + 1);
  const std::size_t rowStride = static_cast<std::size_t>(outWidth) * 3;

  // The horizontal rows, reused from call to call on this thread (a large crop's pass holds
  // ~0.5 MB; fresh memory of that size costs a page fault per 4 KB on first touch).
  thread_local std::vector<float> horizontalRows;
  const std::size_t horizontalLength = static_cast<std::size_t>(rowCount) * rowStride;
  if (horizontalRows.size() < horizontalLength) horizontalRows.resize(horizontalLength);
  float* const horizontal = horizontalRows.data();

  // Each tap's offset into a row of interleaved pixels; the fill's taps keep -1.
  std::vector<int> columnOffsets(columns.indices.size());
  bool samplesFill = false;
  for (std::size_t at = 0; at < columns.indices.size(); at++) {
    const int column = columns.indices[at];
    columnOffsets[at] = column < 0 ? -1 : column * 3;
    if (column < 0 && columns.weights[at] > 0) samplesFill = true;
  }

  const double* const toDouble = kByteToDouble.value;
  const std::uint8_t* const source = image.data;
  const std::size_t sourceStride = static_cast<std::size_t>(image.width) * 3;
  // Two needed rows at a time when they are neighbours: the same taps and weights, and six
  // independent sums instead of three (each one still adds its taps in the JS order).
  for (int row = 0; row < rowCount; row++) {
    float* target = horizontal + static_cast<std::size_t>(row) * rowStride;
    if (rowNeeded[firstRow + row] == 0) {
      // Never read with a non-zero weight; zeroed so that no stale value can reach a sum.
      std::memset(target, 0, rowStride * sizeof(float));
      continue;
    }
    const std::uint8_t* const rowStart = source + static_cast<std::size_t>(firstRow + row) * sourceStride;
    if (!samplesFill && row + 1 < rowCount && rowNeeded[firstRow + row + 1] != 0) {
      const std::uint8_t* const nextStart = rowStart + sourceStride;
      float* nextTarget = target + rowStride;
      for (int o = 0; o < outWidth; o++, target += 3, nextTarget += 3) {
        double red = 0;
        double green = 0;
        double blue = 0;
        double nextRed = 0;
        double nextGreen = 0;
        double nextBlue = 0;
        const int end = columns.endTap[o];
        for (int at = columns.firstTap[o]; at < end; at++) {
          const double weight = columns.weights[at];
          const std::uint8_t* const pixel = rowStart + columnOffsets[at];
          const std::uint8_t* const nextPixel = nextStart + columnOffsets[at];
          red += weight * toDouble[pixel[0]];
          green += weight * toDouble[pixel[1]];
          blue += weight * toDouble[pixel[2]];
          nextRed += weight * toDouble[nextPixel[0]];
          nextGreen += weight * toDouble[nextPixel[1]];
          nextBlue += weight * toDouble[nextPixel[2]];
        }
        target[0] = static_cast<float>(red);
        target[1] = static_cast<float>(green);
        target[2] = static_cast<float>(blue);
        nextTarget[0] = static_cast<float>(nextRed);
        nextTarget[1] = static_cast<float>(nextGreen);
        nextTarget[2] = static_cast<float>(nextBlue);
      }
      row++;
      continue;
    }
    for (int o = 0; o < outWidth; o++, target += 3) {
      double red = 0;
      double green = 0;
      double blue = 0;
      const int end = columns.endTap[o];
      if (samplesFill) {
        for (int at = columns.firstTap[o]; at < end; at++) {
          const double weight = columns.weights[at];
          const int offset = columnOffsets[at];
          if (offset < 0) {
            red += weight * fill;
            green += weight * fill;
            blue += weight * fill;
          } else {
            red += weight * toDouble[rowStart[offset]];
            green += weight * toDouble[rowStart[offset + 1]];
            blue += weight * toDouble[rowStart[offset + 2]];
          }
        }
      } else {
        for (int at = columns.firstTap[o]; at < end; at++) {
          const double weight = columns.weights[at];
          const std::uint8_t* const pixel = rowStart + columnOffsets[at];
          red += weight * toDouble[pixel[0]];
          green += weight * toDouble[pixel[1]];
          blue += weight * toDouble[pixel[2]];
        }
      }
      target[0] = static_cast<float>(red);
      target[1] = static_cast<float>(green);
      target[2] = static_cast<float>(blue);
    }
  }

  thread_local std::vector<double> sumsRow;
  if (sumsRow.size() < rowStride) sumsRow.resize(rowStride);
  double* const sums = sumsRow.data();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (int y = 0; y < outHeight; y++) {
    std::fill(sums, sums + rowStride, 0.0);
    const int end = rows.endTap[y];
    for (int at = rows.firstTap[y]; at < end; at++) {
      const double weight = rows.weights[at];
      const int row = rows.indices[at];
      if (row < 0) {
        const double term = weight * fill;
        for (std::size_t x = 0; x < rowStride; x++) sums[x] = sums[x] + term;
      } else if (row < firstRow || row > lastRow) {
        // Unreachable (a tap inside firstTap..endTap weighs > 0, so its row was passed); JS
        // would read undefined there, which makes the sums NaN.
        for (std::size_t x = 0; x < rowStride; x++) sums[x] = nan;
      } else {
        const float* const line = horizontal + static_cast<std::size_t>(row - firstRow) * rowStride;
        for (std::size_t x = 0; x < rowStride; x++) sums[x] = sums[x] + weight * static_cast<double>(line[x]);
      }
    }
    std::uint8_t* const target = out + static_cast<std::size_t>(y) * rowStride;
    for (std::size_t x = 0; x < rowStride; x++) {
      target[x] = static_cast<std::uint8_t>(std::min(255, RoundChannel(sums[x])));
    }
  }
}

void ResampleAffineLike(const ImageView& image, const double affine[6], int outWidth, int outHeight, bool replicate,
                        double fill, std::uint8_t* out) {
  const double a = affine[0];
  const double b = affine[1];
  const double tx = affine[2];
  const double c = affine[3];
  const double d = affine[4];
  const double ty = affine[5];
  const int width = image.width;
  const int height = image.height;
  const std::uint8_t* const data = image.data;
  // A Uint8Array store of the fill (0..255, checked by the caller) truncates it.
  const std::uint8_t fillByte = replicate ? 0 : static_cast<std::uint8_t>(static_cast<int>(fill));
  const std::ptrdiff_t rowStride = static_cast<std::ptrdiff_t>(width) * 3;
  const int lastX = width - 1;
  const int lastY = height - 1;
  const double lastXd = lastX;
  const double lastYd = lastY;
  const double maxX = width - 0.5;
  const double maxY = height - 0.5;
  std::uint8_t* target = out;
  for (int v = 0; v < outHeight; v++) {
    const double bv = b * v;
    const double dv = d * v;
    for (int u = 0; u < outWidth; u++, target += 3) {
      const double x = a * u + bv + tx;
      const double y = c * u + dv + ty;
      if (!replicate && (x < -0.5 || y < -0.5 || x > maxX || y > maxY)) {
        target[0] = fillByte;
        target[1] = fillByte;
        target[2] = fillByte;
        continue;
      }
      std::ptrdiff_t topLeft;
      std::ptrdiff_t right;
      std::ptrdiff_t down;
      double fx;
      double fy;
      if (x >= 0 && y >= 0 && x < lastXd && y < lastYd) {
        const int x0 = static_cast<int>(x);
        const int y0 = static_cast<int>(y);
        fx = x - x0;
        fy = y - y0;
        topLeft = y0 * rowStride + static_cast<std::ptrdiff_t>(x0) * 3;
        right = 3;
        down = rowStride;
      } else if (x != x || y != y) {
        target[0] = 0;
        target[1] = 0;
        target[2] = 0;
        continue;
      } else {
        const double clampedX = x < 0 ? 0 : x > lastXd ? lastXd : x;
        const double clampedY = y < 0 ? 0 : y > lastYd ? lastYd : y;
        const int x0 = static_cast<int>(clampedX);
        const int y0 = static_cast<int>(clampedY);
        fx = clampedX - x0;
        fy = clampedY - y0;
        topLeft = y0 * rowStride + static_cast<std::ptrdiff_t>(x0) * 3;
        right = x0 < lastX ? 3 : 0;
        down = y0 < lastY ? rowStride : 0;
      }
      const double gx = 1 - fx;
      const double gy = 1 - fy;
      const std::uint8_t* const tl = data + topLeft;
      const std::uint8_t* const tr = tl + right;
      const std::uint8_t* const bl = tl + down;
      const std::uint8_t* const br = bl + right;
      for (int channel = 0; channel < 3; channel++) {
        const double* const toDouble = kByteToDouble.value;
        const double value = (toDouble[tl[channel]] * gx + toDouble[tr[channel]] * fx) * gy +
                             (toDouble[bl[channel]] * gx + toDouble[br[channel]] * fx) * fy;
        // roundChannel's result is at most 256 only for value >= 255.5, which a convex
        // combination of bytes never reaches; the store truncates to 8 bits as Uint8Array does.
        target[channel] = static_cast<std::uint8_t>(RoundChannel(value) & 0xff);
      }
    }
  }
}

void WritePlanarTensor(const ImageView& image, const float* table, float* tensor, int width, int height,
                       int offsetX, int offsetY, const int channelPlanes[3]) {
  const std::size_t pixels = static_cast<std::size_t>(width) * static_cast<std::size_t>(height);
  float* const first = tensor + static_cast<std::size_t>(channelPlanes[0]) * pixels;
  float* const second = tensor + static_cast<std::size_t>(channelPlanes[1]) * pixels;
  float* const third = tensor + static_cast<std::size_t>(channelPlanes[2]) * pixels;
  const float* const firstTable = table;
  const float* const secondTable = table + 256;
  const float* const thirdTable = table + 512;
  const std::size_t rowBytes = static_cast<std::size_t>(image.width) * 3;
  for (int y = 0; y < image.height; y++) {
    const std::uint8_t* source = image.data + static_cast<std::size_t>(y) * rowBytes;
    const std::size_t start = static_cast<std::size_t>(y + offsetY) * static_cast<std::size_t>(width) +
                              static_cast<std::size_t>(offsetX);
    for (int x = 0; x < image.width; x++, source += 3) {
      first[start + x] = firstTable[source[0]];
      second[start + x] = secondTable[source[1]];
      third[start + x] = thirdTable[source[2]];
    }
  }
}

}  // namespace facegate_resample
