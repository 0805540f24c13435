// See mad_kernels.h: each loop mirrors its JavaScript reference operation for operation.
#include "mad_kernels.h"

#include <algorithm>
#include <cstddef>
#include <vector>

namespace facegate_resample {

void WarpLumaChroma(const ImageView& image, const double cropToSource[6], int width, int height,
                    const LumaChromaPlanes& planes) {
  const double a = cropToSource[0], b = cropToSource[1], tx = cropToSource[2];
  const double c = cropToSource[3], d = cropToSource[4], ty = cropToSource[5];
  const std::uint8_t* data = image.data;
  const std::size_t rowBytes = static_cast<std::size_t>(image.width) * 3;
  for (int y = 0; y < height; y++) {
    for (int x = 0; x < width; x++) {
      const std::size_t at = static_cast<std::size_t>(y) * width + x;
      const double sx = a * x + b * y + tx;
      const double sy = c * x + d * y + ty;
      // floor(sx) < 0 or floor(sx) + 1 >= width, as the reference has it, without floor (a libm
      // call on baseline x86-64) and before any conversion to int.
      if (!(sx >= 0 && sx < image.width - 1 && sy >= 0 && sy < image.height - 1)) {
        planes.valid[at] = 0;
        planes.luma[at] = 0;
        planes.chromaBlue[at] = 0;
        planes.chromaRed[at] = 0;
        continue;
      }
      const int column = static_cast<int>(sx);  // floor: sx >= 0
      const int row = static_cast<int>(sy);
      const double x0 = column;
      const double y0 = row;
      const double fx = sx - x0;
      const double fy = sy - y0;
      const std::uint8_t* p00 = data + static_cast<std::size_t>(row) * rowBytes + static_cast<std::size_t>(column) * 3;
      const std::uint8_t* p01 = p00 + 3;
      const std::uint8_t* p10 = p00 + rowBytes;
      const std::uint8_t* p11 = p10 + 3;
      const double w00 = (1 - fx) * (1 - fy);
      const double w01 = fx * (1 - fy);
      const double w10 = (1 - fx) * fy;
      const double w11 = fx * fy;
      const double red = w00 * p00[0] + w01 * p01[0] + w10 * p10[0] + w11 * p11[0];
      const double green = w00 * p00[1] + w01 * p01[1] + w10 * p10[1] + w11 * p11[1];
      const double blue = w00 * p00[2] + w01 * p01[2] + w10 * p10[2] + w11 * p11[2];
      const double brightness = 0.299 * red + 0.587 * green + 0.114 * blue;
      planes.luma[at] = static_cast<float>(brightness);
      planes.chromaBlue[at] = static_cast<float>(0.564 * (blue - brightness));
      planes.chromaRed[at] = static_cast<float>(0.713 * (red - brightness));
      planes.valid[at] = 1;
    }
  }
}

void BoxBlurPlane(const float* source, int width, int height, int radius, float* out) {
  const double size = 2 * radius + 1;
  const int lastX = width - 1;
  const int lastY = height - 1;
  // Kept per thread: a new buffer of a crop's size per call would be mapped and faulted in afresh.
  thread_local std::vector<float> rows;
  thread_local std::vector<double> columnSums;
  rows.resize(static_cast<std::size_t>(width) * height);
  columnSums.assign(width, 0.0);
  for (int y = 0; y < height; y++) {
    const float* row = source + static_cast<std::size_t>(y) * width;
    float* blurred = rows.data() + static_cast<std::size_t>(y) * width;
    double sum = 0;
    for (int k = -radius; k <= radius; k++) sum += row[std::min(lastX, std::max(0, k))];
    for (int x = 0; x < width; x++) {
      blurred[x] = static_cast<float>(sum / size);
      const int leaving = std::max(0, x - radius);
      const int entering = std::min(lastX, x + radius + 1);
      sum += static_cast<double>(row[entering]) - static_cast<double>(row[leaving]);
    }
  }
  // Columns through running sums, row by row, so that memory is read in order.
  for (int k = -radius; k <= radius; k++) {
    const float* row = rows.data() + static_cast<std::size_t>(std::min(lastY, std::max(0, k))) * width;
    for (int x = 0; x < width; x++) columnSums[x] = columnSums[x] + row[x];
  }
  for (int y = 0; y < height; y++) {
    float* target = out + static_cast<std::size_t>(y) * width;
    const float* leaving = rows.data() + static_cast<std::size_t>(std::max(0, y - radius)) * width;
    const float* entering = rows.data() + static_cast<std::size_t>(std::min(lastY, y + radius + 1)) * width;
    for (int x = 0; x < width; x++) {
      target[x] = static_cast<float>(columnSums[x] / size);
      columnSums[x] = columnSums[x] + entering[x] - leaving[x];
    }
  }
}

void GradientAutocorrelation(const float* smooth, const std::uint8_t* valid, int width, int height, bool vertical,
                             int lineFrom, int lineTo, int lineStep, int alongFrom, int alongTo, int lagMax,
                             int lagStep, double* correlation) {
  const std::ptrdiff_t step = vertical ? width : 1;
  std::vector<double> gradient(static_cast<std::size_t>(std::max(width, height)), 0.0);
  for (int line = lineFrom; line < lineTo; line += lineStep) {
    for (int position = alongFrom; position < alongTo; position++) {
      const std::ptrdiff_t at = vertical ? static_cast<std::ptrdiff_t>(position) * width + line
                                         : static_cast<std::ptrdiff_t>(line) * width + position;
      const bool ok = valid[at - step] == 1 && valid[at + step] == 1;
      gradient[position] = ok ? static_cast<double>(smooth[at + step]) - static_cast<double>(smooth[at - step]) : 0;
    }
    for (int lag = 0; lag <= lagMax; lag += lagStep) {
      double sum = 0;
      for (int position = alongFrom; position + lag < alongTo; position++) {
        sum += gradient[position] * gradient[position + lag];
      }
      correlation[lag] = correlation[lag] + sum;
    }
  }
}

}  // namespace facegate_resample
