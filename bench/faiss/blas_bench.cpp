// Measures what the BLAS implementation behind libblas.so.3 changes for libfaiss 1.7.3:
//   flat1-scalar  single-query IndexFlatIP search, faiss's own scalar loop (nq < blas threshold)
//   flat1-blas    the same queries through the BLAS path (distance_compute_blas_threshold = 1)
//   flatB         one batched search of --queries queries (nq >= 20: BLAS path)
//   ivf-train     IVF<nlist>,Flat training (k-means: BLAS sgemm for the assignments)
// Pick the BLAS at run time without touching the system default, e.g.
//   LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/blas            (reference BLAS)
//   LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-pthread (OpenBLAS, pthreads)
// Usage: blas_bench [--n 200000] [--queries 50] [--batch 200] [--train-n 20000] [--nlist 256]
//                   [--niter 5] [--db-bs 1024] [--threads T] [--skip flat1-scalar,...]
#include <faiss/IndexFlat.h>
#include <faiss/IndexIVF.h>
#include <faiss/index_factory.h>
#include <faiss/utils/distances.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace {

double Ms(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

std::vector<float> UnitVectors(long n, int d, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal;
  std::vector<float> v(static_cast<size_t>(n) * d);
  for (long i = 0; i < n; ++i) {
    float* row = &v[static_cast<size_t>(i) * d];
    double norm = 0;
    for (int j = 0; j < d; ++j) {
      row[j] = normal(gen);
      norm += row[j] * row[j];
    }
    const float inv = static_cast<float>(1 / std::sqrt(norm));
    for (int j = 0; j < d; ++j) row[j] *= inv;
  }
  return v;
}

double Percentile(std::vector<double> s, double p) {
  std::sort(s.begin(), s.end());
  return s[std::min(s.size() - 1, static_cast<size_t>(p * s.size()))];
}

}  // namespace

int main(int argc, char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);
  }
  long n = 200000, trainN = 20000;
  int d = 512, queries = 50, batch = 200, nlist = 256, niter = 5, threads = 0, dbBs = 0;
  std::string skip;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string f = argv[i];
    const char* v = argv[i + 1];
    if (f == "--n") n = std::atol(v);
    else if (f == "--queries") queries = std::atoi(v);
    else if (f == "--batch") batch = std::atoi(v);
    else if (f == "--train-n") trainN = std::atol(v);
    else if (f == "--nlist") nlist = std::atoi(v);
    else if (f == "--niter") niter = std::atoi(v);
    else if (f == "--threads") threads = std::atoi(v);
    else if (f == "--db-bs") dbBs = std::atoi(v);
    else if (f == "--skip") skip = v;
    else {
      std::fprintf(stderr, "unknown flag %s\n", f.c_str());
      return 2;
    }
  }
  if (threads > 0) omp_set_num_threads(threads);
  if (dbBs > 0) faiss::distance_compute_blas_database_bs = dbBs;
  auto wanted = [&](const std::string& name) { return ("," + skip + ",").find("," + name + ",") == std::string::npos; };

  std::printf("{\"n\":%ld,\"omp_threads\":%d,\"openblas_num_threads\":\"%s\",\"db_bs\":%d", n, omp_get_max_threads(),
              std::getenv("OPENBLAS_NUM_THREADS") ? std::getenv("OPENBLAS_NUM_THREADS") : "", 
              faiss::distance_compute_blas_database_bs);
  const std::vector<float> q = UnitVectors(std::max(queries, batch), d, 7);
  const int k = 10;
  std::vector<float> dist(static_cast<size_t>(std::max(queries, batch)) * k);
  std::vector<faiss::Index::idx_t> lab(dist.size());
  if (wanted("flat")) {
    const std::vector<float> base = UnitVectors(n, d, 1);
    faiss::IndexFlatIP flat(d);
    flat.add(n, base.data());
    for (int mode = 0; mode < 2; ++mode) {
      const char* name = mode == 0 ? "flat1_scalar" : "flat1_blas";
      if (!wanted(name)) continue;
      faiss::distance_compute_blas_threshold = mode == 0 ? 20 : 1;
      flat.search(1, q.data(), k, dist.data(), lab.data());
      std::vector<double> samples;
      for (int i = 0; i < queries; ++i) {
        const auto t = std::chrono::steady_clock::now();
        flat.search(1, &q[static_cast<size_t>(i) * d], k, dist.data(), lab.data());
        samples.push_back(Ms(t));
      }
      std::printf(",\"%s_ms\":{\"p50\":%.2f,\"p99\":%.2f}", name, Percentile(samples, 0.5), Percentile(samples, 0.99));
      std::fflush(stdout);
    }
    faiss::distance_compute_blas_threshold = 20;
    if (wanted("flatB")) {
      const auto t = std::chrono::steady_clock::now();
      flat.search(batch, q.data(), k, dist.data(), lab.data());
      const double ms = Ms(t);
      std::printf(",\"flatB\":{\"batch\":%d,\"total_ms\":%.1f,\"per_query_ms\":%.3f}", batch, ms, ms / batch);
      std::fflush(stdout);
    }
  }
  if (wanted("ivf-train")) {
    const std::vector<float> train = UnitVectors(trainN, d, 3);
    const std::string desc = "IVF" + std::to_string(nlist) + ",Flat";
    std::unique_ptr<faiss::Index> index(faiss::index_factory(d, desc.c_str(), faiss::METRIC_INNER_PRODUCT));
    dynamic_cast<faiss::IndexIVF&>(*index).cp.niter = niter;
    const auto t = std::chrono::steady_clock::now();
    index->train(trainN, train.data());
    std::printf(",\"ivf_train\":{\"desc\":\"%s\",\"train_n\":%ld,\"niter\":%d,\"ms\":%.0f}", desc.c_str(), trainN,
                niter, Ms(t));
  }
  std::printf("}\n");
  return 0;
}
