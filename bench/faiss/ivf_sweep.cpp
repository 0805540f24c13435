// Approximate-index sweep for the gallery's recommended configuration: for each faiss factory
// string, trains on a sample, adds N gaussian unit vectors (512-d, inner product) and times
// single-query searches of planted-mate probes per nprobe, with recall against exact search.
//
// Probes are planted mates like bench/gallery/common.ts: probe = s*mate + sqrt(1-s^2)*noise with
// s uniform in [--sim-min, --sim-max] (cosine to the mate); or base, probes and mates come from
// --data FILE (bench/faiss/face_like.py: templates with the statistics of real ones). Recall
// definitions, k = 10:
//   mate_recall   fraction of probes whose planted mate is in the approximate top-10
//                 (exact search ranks the mate first for every probe);
//   thr_recall    fraction of exact top-10 results with score >= 0.45 that the approximate
//                 top-10 also returns (on this data, the mate and nothing else);
//   all_recall    |approx top-10 ∩ exact top-10| / 10, including the 9 random neighbours at
//                 cosine ~0.15 that no real search would report.
//
// Usage: ivf_sweep --n 1000000 --queries 200 --train 65536 --niter 10
//                  --index 'IVF1024,PQ64np,RFlat' --nprobe 8,16,32 [--kfactor 4] [--index ...]
//                  [--blas-threshold 1] [--threads 1] [--db-bs 1024] [--simd 1] [--data file]
#include <faiss/AutoTune.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexPQ.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/IndexRefine.h>
#include <faiss/IVFlib.h>
#include <faiss/index_factory.h>
#include <faiss/utils/distances.h>

#include "../../packages/faiss/native/simd_flat.h"
#include <omp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

using idx_t = faiss::Index::idx_t;

namespace {

double Ms(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

void Normalise(float* v, int d) {
  double n = 0;
  for (int j = 0; j < d; ++j) n += double(v[j]) * v[j];
  const float inv = float(1 / std::sqrt(n));
  for (int j = 0; j < d; ++j) v[j] *= inv;
}

std::vector<int> SplitInts(const std::string& s) {
  std::vector<int> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t end = s.find(',', start);
    const std::string part = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!part.empty()) out.push_back(std::atoi(part.c_str()));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

double Pct(std::vector<double> s, double p) {
  std::sort(s.begin(), s.end());
  return s[std::min(s.size() - 1, size_t(p * s.size()))];
}

long RssKb() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  long pages = 0, rss = 0;
  if (f != nullptr) {
    if (std::fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
    std::fclose(f);
  }
  return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

// Isotropic gaussian unit vectors; probe = s*mate + sqrt(1-s^2)*noise, s uniform in [simMin, simMax].
void GenerateIsotropic(long n, int d, int queries, double simMin, double simMax, std::vector<float>& base,
                       std::vector<float>& q, std::vector<long>& mates) {
  std::mt19937_64 gen(12345);
  std::normal_distribution<float> normal;
  base.assign(size_t(n) * d, 0);
  for (long i = 0; i < n; ++i) {
    for (int j = 0; j < d; ++j) base[size_t(i) * d + j] = normal(gen);
    Normalise(&base[size_t(i) * d], d);
  }
  std::uniform_int_distribution<long> pick(0, n - 1);
  std::uniform_real_distribution<double> simDist(simMin, simMax);
  q.assign(size_t(queries) * d, 0);
  mates.assign(queries, 0);
  for (int i = 0; i < queries; ++i) {
    mates[i] = pick(gen);
    const float* m = &base[size_t(mates[i]) * d];
    std::vector<float> noise(d);
    double dot = 0;
    for (int j = 0; j < d; ++j) noise[j] = normal(gen), dot += noise[j] * m[j];
    for (int j = 0; j < d; ++j) noise[j] -= float(dot) * m[j];
    Normalise(noise.data(), d);
    const double s = simDist(gen), c = std::sqrt(1 - s * s);
    for (int j = 0; j < d; ++j) q[size_t(i) * d + j] = float(s * m[j] + c * noise[j]);
  }
}

// A data set written by face_like_data: int32 n, d, queries; float32 base[n*d], probes[queries*d];
// int64 mates[queries].
bool ReadDataFile(const std::string& file, long& n, int& d, int& queries, std::vector<float>& base,
                  std::vector<float>& q, std::vector<long>& mates) {
  FILE* f = std::fopen(file.c_str(), "rb");
  if (f == nullptr) {
    std::fprintf(stderr, "cannot open %s\n", file.c_str());
    return false;
  }
  int32_t header[3];
  bool ok = std::fread(header, sizeof header, 1, f) == 1;
  if (ok) {
    n = header[0], d = header[1], queries = header[2];
    base.resize(size_t(n) * d);
    q.resize(size_t(queries) * d);
    mates.resize(queries);
    std::vector<int64_t> m(queries);
    ok = std::fread(base.data(), sizeof(float), base.size(), f) == base.size() &&
         std::fread(q.data(), sizeof(float), q.size(), f) == q.size() &&
         std::fread(m.data(), sizeof(int64_t), m.size(), f) == m.size();
    for (int i = 0; i < queries; ++i) mates[i] = long(m[i]);
  }
  std::fclose(f);
  if (!ok) std::fprintf(stderr, "%s is not a data file\n", file.c_str());
  return ok;
}

struct Config {
  std::string index;
  std::vector<int> nprobes;
  std::vector<int> kfactors{1};
};

}  // namespace

int main(int argc, char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);
  }
  long n = 200000, train = 65536;
  int efConstruction = 0;
  int d = 512, queries = 200, niter = 10, threads = 1, blasThreshold = 20, dbBs = 0;
  double simMin = 0.5, simMax = 0.8;
  std::string dataFile;
  bool simd = false;
  std::vector<Config> configs;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string f = argv[i];
    const std::string v = argv[i + 1];
    if (f == "--n") n = std::stol(v);
    else if (f == "--queries") queries = std::stoi(v);
    else if (f == "--train") train = std::stol(v);
    else if (f == "--niter") niter = std::stoi(v);
    else if (f == "--threads") threads = std::stoi(v);
    else if (f == "--blas-threshold") blasThreshold = std::stoi(v);
    else if (f == "--db-bs") dbBs = std::stoi(v);
    else if (f == "--efc") efConstruction = std::stoi(v);
    else if (f == "--sim-min") simMin = std::stod(v);
    else if (f == "--sim-max") simMax = std::stod(v);
    else if (f == "--data") dataFile = v;
    else if (f == "--simd") simd = v == "1";
    else if (f == "--index") configs.push_back({v, {1}});
    else if (f == "--nprobe" && !configs.empty()) configs.back().nprobes = SplitInts(v);
    else if (f == "--kfactor" && !configs.empty()) configs.back().kfactors = SplitInts(v);
    else {
      std::fprintf(stderr, "bad flag %s\n", f.c_str());
      return 2;
    }
  }
  if (dbBs > 0) faiss::distance_compute_blas_database_bs = dbBs;
  train = std::min(train, n);
  const int k = 10;

  // Data: base vectors, planted-mate probes; generated (isotropic) or read from --data.
  std::vector<float> base;
  std::vector<float> q;
  std::vector<long> mates;
  if (!dataFile.empty()) {
    if (!ReadDataFile(dataFile, n, d, queries, base, q, mates)) return 2;
    train = std::min(train, n);
  } else {
    GenerateIsotropic(n, d, queries, simMin, simMax, base, q, mates);
  }

  // Ground truth (batched exact search: BLAS path).
  omp_set_num_threads(2);
  std::vector<float> gtD(size_t(queries) * k);
  std::vector<idx_t> gtI(size_t(queries) * k);
  double flatBatchMs;
  {
    faiss::IndexFlatIP flat(d);
    flat.add(n, base.data());
    const auto t = std::chrono::steady_clock::now();
    flat.search(queries, q.data(), k, gtD.data(), gtI.data());
    flatBatchMs = Ms(t);
  }
  int mateFirst = 0;
  for (int i = 0; i < queries; ++i) mateFirst += gtI[size_t(i) * k] == mates[i];
  const std::string probes =
      dataFile.empty() ? "\"sim\":[" + std::to_string(simMin) + "," + std::to_string(simMax) + "]"
                       : "\"data\":\"" + dataFile + "\"";
  std::printf("{\"n\":%ld,\"queries\":%d,\"train\":%ld,\"niter\":%d,\"threads\":%d,\"blas_threshold\":%d,"
              "\"simd\":%d,%s,\"flat_batch_ms_per_query\":%.2f,\"exact_mate_rank1\":%.4f,\"runs\":[\n",
              n, queries, train, niter, threads, blasThreshold, int(simd), probes.c_str(), flatBatchMs / queries,
              double(mateFirst) / queries);
  std::fflush(stdout);

  bool firstRun = true;
  for (const Config& config : configs) {
    omp_set_num_threads(2);
    faiss::distance_compute_blas_threshold = 20;
    const long rssBefore = RssKb();
    // "L2:<factory>" builds an L2 index (same ranking as inner product on unit vectors); needed
    // for HNSW<M>_PQ<m>, which faiss 1.7.3's factory always builds with L2.
    const bool l2 = config.index.rfind("L2:", 0) == 0;
    std::unique_ptr<faiss::Index> index(faiss::index_factory(d, config.index.c_str() + (l2 ? 3 : 0),
                                                             l2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT));
    faiss::Index* inner = index.get();
    if (auto* refine = dynamic_cast<faiss::IndexRefine*>(inner)) inner = refine->base_index;
    if (auto* transformed = dynamic_cast<faiss::IndexPreTransform*>(inner)) inner = transformed->index;
    faiss::IndexIVF* ivf = faiss::ivflib::try_extract_index_ivf(inner);
    if (ivf != nullptr) ivf->cp.niter = niter;
    auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(inner);
    if (hnsw != nullptr && efConstruction > 0) hnsw->hnsw.efConstruction = efConstruction;
    // HNSW<M>_PQ<m> storage would run polysemous training (minutes, useless for HNSW).
    if (hnsw != nullptr) {
      if (auto* pq = dynamic_cast<faiss::IndexPQ*>(hnsw->storage)) pq->do_polysemous_training = false;
    }
    // --simd 1: HNSW over the binding's vectorised flat storage, as the gallery builds it.
    if (simd) facegate_faiss::UseSimdHnswStorage(*index);
    auto t = std::chrono::steady_clock::now();
    index->train(train, base.data());
    const double trainMs = Ms(t);
    t = std::chrono::steady_clock::now();
    index->add(n, base.data());
    const double addMs = Ms(t);
    const long rssAfter = RssKb();
    omp_set_num_threads(threads);
    faiss::distance_compute_blas_threshold = blasThreshold;
    for (int nprobe : config.nprobes) {
      for (int kfactor : config.kfactors) {
        if (ivf != nullptr) ivf->nprobe = nprobe;
        if (hnsw != nullptr) hnsw->hnsw.efSearch = nprobe;
        if (auto* refine = dynamic_cast<faiss::IndexRefine*>(index.get())) refine->k_factor = float(kfactor);
        std::vector<float> D(k);
        std::vector<idx_t> I(k);
        index->search(1, q.data(), k, D.data(), I.data());
        std::vector<double> samples;
        long mateHits = 0, overlap = 0, thrTruth = 0, thrHits = 0;
        for (int i = 0; i < queries; ++i) {
          const auto s = std::chrono::steady_clock::now();
          index->search(1, &q[size_t(i) * d], k, D.data(), I.data());
          samples.push_back(Ms(s));
          std::set<idx_t> got(I.begin(), I.end());
          mateHits += got.count(mates[i]);
          for (int r = 0; r < k; ++r) {
            const idx_t truth = gtI[size_t(i) * k + r];
            overlap += got.count(truth);
            if (gtD[size_t(i) * k + r] >= 0.45f) thrTruth++, thrHits += got.count(truth);
          }
        }
        std::printf("%s{\"metric\":%d,\"index\":\"%s\",\"nprobe\":%d,\"k_factor\":%d,\"train_ms\":%.0f,\"add_ms\":%.0f,"
                    "\"index_bytes_per_vector\":%.0f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"mate_recall\":%.4f,"
                    "\"thr_recall\":%.4f,\"all_recall\":%.4f}",
                    firstRun ? "" : ",\n", int(index->metric_type), config.index.c_str(), nprobe, kfactor, trainMs, addMs,
                    double(rssAfter - rssBefore) * 1024 / n, Pct(samples, 0.5), Pct(samples, 0.99),
                    double(mateHits) / queries, double(thrHits) / std::max(thrTruth, 1L),
                    double(overlap) / (queries * k));
        std::fflush(stdout);
        firstRun = false;
      }
    }
  }
  std::printf("]}\n");
  return 0;
}
