// Raw libfaiss baseline for bench/faiss/binding-search.ts: builds IndexFlatIP
// and IndexHNSWFlat (inner product) over N synthetic unit vectors and times
// single-query searches, printing one JSON object on stdout.
//
// The vectors come from the same generator as test/faiss/helpers.ts
// (mulberry32, sum of three uniforms, normalised), so both programs search
// identical data for the same seed.
//
// Usage: raw_search [--n 100000] [--d 512] [--queries 1000] [--k 10]
//                   [--hnsw-m 32] [--ef-construction 40] [--ef-search 64]
//                   [--hnsw-n 20000] [--no-hnsw] [--threads T] [--seed 1] [--blas-threshold B]
//
// --blas-threshold sets faiss::distance_compute_blas_threshold (faiss default 20; @facegate/faiss
// sets 1 when libblas.so.3 is OpenBLAS, so pass 1 to compare like with like).
//
// HNSW is built over the first --hnsw-n vectors (default min(N, 20000)):
// Debian's libfaiss is compiled without SIMD, and building a 512-d HNSW graph
// with it ran at roughly 120 inserts/s on a busy 2-core machine.
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/utils/distances.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct Options {
  long count = 100000;
  long hnswCount = -1;  // -1: min(count, 20000)
  int dimension = 512;
  int queries = 1000;
  int k = 10;
  int hnswM = 32;
  int efConstruction = 40;
  int efSearch = 64;
  bool hnsw = true;
  int threads = 0;
  int blasThreshold = -1;
  uint32_t seed = 1;
};

Options ParseOptions(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", flag.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (flag == "--n") options.count = std::atol(next());
    else if (flag == "--d") options.dimension = std::atoi(next());
    else if (flag == "--queries") options.queries = std::atoi(next());
    else if (flag == "--k") options.k = std::atoi(next());
    else if (flag == "--hnsw-m") options.hnswM = std::atoi(next());
    else if (flag == "--ef-construction") options.efConstruction = std::atoi(next());
    else if (flag == "--ef-search") options.efSearch = std::atoi(next());
    else if (flag == "--hnsw-n") options.hnswCount = std::atol(next());
    else if (flag == "--no-hnsw") options.hnsw = false;
    else if (flag == "--threads") options.threads = std::atoi(next());
    else if (flag == "--blas-threshold") options.blasThreshold = std::atoi(next());
    else if (flag == "--seed") options.seed = static_cast<uint32_t>(std::atol(next()));
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      std::exit(2);
    }
  }
  if (options.count < 1 || options.dimension < 1 || options.queries < 1 || options.k < 1) {
    std::fprintf(stderr, "--n, --d, --queries and --k must be positive\n");
    std::exit(2);
  }
  if (options.hnswCount < 0) options.hnswCount = std::min(options.count, 20000L);
  options.hnswCount = std::min(options.hnswCount, options.count);
  return options;
}

// Same arithmetic as seededRandom() in test/faiss/helpers.ts, including the
// double-precision division, so the two produce bit-identical vectors.
class Mulberry32 {
 public:
  explicit Mulberry32(uint32_t seed) : state_(seed) {}
  double Next() {
    state_ += 0x6d2b79f5u;
    uint32_t t = state_;
    t = (t ^ (t >> 15)) * (t | 1u);
    t ^= t + (t ^ (t >> 7)) * (t | 61u);
    return static_cast<double>(t ^ (t >> 14)) / 4294967296.0;
  }

 private:
  uint32_t state_;
};

std::vector<float> RandomUnitVectors(long count, int dimension, uint32_t seed) {
  Mulberry32 random(seed);
  std::vector<float> vectors(static_cast<size_t>(count) * dimension);
  for (long row = 0; row < count; ++row) {
    float* vector = &vectors[static_cast<size_t>(row) * dimension];
    double squaredNorm = 0;
    for (int column = 0; column < dimension; ++column) {
      const double a = random.Next();
      const double b = random.Next();
      const double c = random.Next();
      const float value = static_cast<float>(a + b + c - 1.5);
      vector[column] = value;
      squaredNorm += static_cast<double>(value) * value;
    }
    const double inverseNorm = 1 / std::sqrt(squaredNorm);
    for (int column = 0; column < dimension; ++column) {
      vector[column] = static_cast<float>(vector[column] * inverseNorm);
    }
  }
  return vectors;
}

double MillisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

struct LatencySummary {
  double p50, p90, p99, mean, max;
};

LatencySummary Summarise(std::vector<double> samples) {
  std::sort(samples.begin(), samples.end());
  auto percentile = [&](double p) {
    const size_t rank = static_cast<size_t>(std::ceil(p * samples.size()));
    return samples[std::min(samples.size() - 1, rank == 0 ? 0 : rank - 1)];
  };
  double total = 0;
  for (double sample : samples) total += sample;
  return {percentile(0.5), percentile(0.9), percentile(0.99), total / samples.size(), samples.back()};
}

std::string TimeSingleQueries(const char* name, faiss::Index& index, const std::vector<float>& queries,
                              const Options& options, long count, double buildMs) {
  std::vector<float> distances(options.k);
  std::vector<faiss::Index::idx_t> labels(options.k);
  // One untimed pass so page faults and lazy initialisation do not land in the first samples.
  index.search(1, queries.data(), options.k, distances.data(), labels.data());
  std::vector<double> samples;
  samples.reserve(options.queries);
  for (int query = 0; query < options.queries; ++query) {
    const auto start = std::chrono::steady_clock::now();
    index.search(1, &queries[static_cast<size_t>(query) * options.dimension], options.k, distances.data(),
                 labels.data());
    samples.push_back(MillisecondsSince(start));
  }
  const LatencySummary summary = Summarise(samples);
  char json[512];
  std::snprintf(json, sizeof json,
                "{\"index\":\"%s\",\"n\":%ld,\"buildMs\":%.1f,\"searchMs\":{\"p50\":%.4f,\"p90\":%.4f,\"p99\":%.4f,"
                "\"mean\":%.4f,\"max\":%.4f}}",
                name, count, buildMs, summary.p50, summary.p90, summary.p99, summary.mean, summary.max);
  return json;
}

// libgomp reads OMP_WAIT_POLICY before main(); re-executing with it set keeps
// this baseline on the same policy the binding defaults to (passive).
void EnsurePassiveWaitPolicy(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  setenv("OMP_WAIT_POLICY", "passive", 1);
  execv("/proc/self/exe", argv);
  // execv only returns on failure; carry on with the default policy.
}

}  // namespace

int main(int argc, char** argv) {
  EnsurePassiveWaitPolicy(argv);
  const Options options = ParseOptions(argc, argv);
  if (options.threads > 0) omp_set_num_threads(options.threads);
  if (options.blasThreshold >= 0) faiss::distance_compute_blas_threshold = options.blasThreshold;

  const std::vector<float> base = RandomUnitVectors(options.count, options.dimension, options.seed);
  const std::vector<float> queries = RandomUnitVectors(options.queries, options.dimension, options.seed + 1);

  std::vector<std::string> results;
  {
    faiss::IndexFlatIP flat(options.dimension);
    const auto start = std::chrono::steady_clock::now();
    flat.add(options.count, base.data());
    results.push_back(TimeSingleQueries("Flat", flat, queries, options, options.count, MillisecondsSince(start)));
  }
  if (options.hnsw && options.hnswCount > 0) {
    faiss::IndexHNSWFlat hnsw(options.dimension, options.hnswM, faiss::METRIC_INNER_PRODUCT);
    hnsw.hnsw.efConstruction = options.efConstruction;
    hnsw.hnsw.efSearch = options.efSearch;
    const auto start = std::chrono::steady_clock::now();
    hnsw.add(options.hnswCount, base.data());
    const double buildMs = MillisecondsSince(start);
    char name[64];
    std::snprintf(name, sizeof name, "HNSW%d", options.hnswM);
    results.push_back(TimeSingleQueries(name, hnsw, queries, options, options.hnswCount, buildMs));
  }

  std::printf("{\"program\":\"raw_search\",\"faiss\":\"%d.%d.%d\",\"n\":%ld,\"d\":%d,\"queries\":%d,\"k\":%d,"
              "\"efSearch\":%d,\"efConstruction\":%d,\"ompThreads\":%d,\"ompWaitPolicy\":\"%s\",\"blasThreshold\":%d,"
              "\"results\":[",
              FAISS_VERSION_MAJOR, FAISS_VERSION_MINOR, FAISS_VERSION_PATCH, options.count, options.dimension,
              options.queries, options.k, options.efSearch, options.efConstruction, omp_get_max_threads(),
              std::getenv("OMP_WAIT_POLICY"), faiss::distance_compute_blas_threshold);
  for (size_t i = 0; i < results.size(); ++i) std::printf("%s%s", i == 0 ? "" : ",", results[i].c_str());
  std::printf("]}\n");
  return 0;
}
