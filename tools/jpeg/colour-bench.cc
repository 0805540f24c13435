// Times the JPEG addon's colour conversion (packages/jpeg/native/colour.cc, ConvertInPlace) on real photos, alone:
// each JPEG is decoded once (at 1/SHRINK, default 1), then converted from its embedded profile to libvips' sRGB
// `rounds` times. Built against a second colour.cc (namespace facegate_baseline, see colour-bench.sh --against) it
// alternates the two on the same pixels, round by round, says whether they give the same bytes, and prints both
// times: on the shared VMs, whose speed drifts by a fifth within minutes, only such alternation shows a change of a
// few tens of per cent.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <vector>

#include "colour.h"
#include "jpeg.h"

#ifdef WITH_BASELINE
namespace facegate_baseline {
class ColourTransform;
std::shared_ptr<const ColourTransform> TransformBetween(const std::uint8_t*, std::size_t, const std::uint8_t*,
                                                        std::size_t, const char**);
void ConvertInPlace(const ColourTransform&, std::uint8_t*, std::size_t);
}  // namespace facegate_baseline
#endif

namespace {

std::vector<std::uint8_t> ReadAll(const char* path) {
  std::ifstream file(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(file), {}};
}

template <typename Convert>
double TimedMs(std::vector<std::uint8_t>& pixels, const std::vector<std::uint8_t>& source, Convert convert) {
  pixels = source;
  const auto started = std::chrono::steady_clock::now();
  convert(pixels.data());
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: colour-bench OUTPUT_PROFILE.icc PHOTO.jpg... (SHRINK=1|2|4|8, ROUNDS=15)\n");
    return 2;
  }
  const std::vector<std::uint8_t> output = ReadAll(argv[1]);
  const int shrink = std::getenv("SHRINK") ? std::atoi(std::getenv("SHRINK")) : 1;
  const int rounds = std::getenv("ROUNDS") ? std::atoi(std::getenv("ROUNDS")) : 15;
  for (int arg = 2; arg < argc; arg++) {
    const std::vector<std::uint8_t> jpeg = ReadAll(argv[arg]);
    facegate_jpeg::JpegHeader header;
    facegate_jpeg::IccProfile icc{nullptr, 0};
    if (!facegate_jpeg::ReadJpegHeader(jpeg.data(), jpeg.size(), header, &icc) || icc.data == nullptr) {
      std::printf("%s: no embedded profile\n", argv[arg]);
      continue;
    }
    const std::unique_ptr<std::uint8_t, decltype(&std::free)> profile(icc.data, &std::free);
    int width;
    int height;
    facegate_jpeg::ShrunkSize(header.width, header.height, shrink, width, height);
    const std::size_t count = static_cast<std::size_t>(width) * height;
    std::vector<std::uint8_t> source(count * 3);
    char error[200];
    if (!facegate_jpeg::DecodeJpeg(jpeg.data(), jpeg.size(), shrink, source.data(), width, height, error)) {
      std::printf("%s: %s\n", argv[arg], error);
      continue;
    }
    const char* whyNot = nullptr;
    const auto transform = facegate_jpeg::TransformBetween(icc.data, icc.length, output.data(), output.size(), &whyNot);
    if (!transform) {
      std::printf("%s: %s\n", argv[arg], whyNot);
      continue;
    }
    std::vector<std::uint8_t> pixels;
    double total = 0;
#ifdef WITH_BASELINE
    const auto baseline =
        facegate_baseline::TransformBetween(icc.data, icc.length, output.data(), output.size(), &whyNot);
    std::vector<std::uint8_t> baselinePixels;
    double baselineTotal = 0;
#endif
    for (int round = 0; round < rounds; round++) {
#ifdef WITH_BASELINE
      baselineTotal += TimedMs(baselinePixels, source, [&](std::uint8_t* data) {
        facegate_baseline::ConvertInPlace(*baseline, data, count);
      });
#endif
      total += TimedMs(pixels, source, [&](std::uint8_t* data) { facegate_jpeg::ConvertInPlace(*transform, data, count); });
    }
    std::printf("%s %dx%d: %.2f ms (%.1f ns a pixel)", argv[arg], width, height, total / rounds,
                total / rounds * 1e6 / static_cast<double>(count));
#ifdef WITH_BASELINE
    std::printf(", baseline %.2f ms (%.1f ns a pixel), same bytes: %s", baselineTotal / rounds,
                baselineTotal / rounds * 1e6 / static_cast<double>(count), pixels == baselinePixels ? "yes" : "NO");
#endif
    std::printf("\n");
  }
  return 0;
}
