// The CUDA runtime side of the backend (device.hpp): memory, copies, launches. The kernels
// and their tables are in kernels.cuh. Compiled twice: by nvcc for the GPU, and by the host
// compiler for the emulator (emulator.cpp); runtime.cuh says which, and every name below
// lives in that platform's namespace.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "device.hpp"
#include "kernels.cuh"
#include "lesde/record.hpp"  // RecordLayout
#include "record_kernels.cuh"
#include "runtime.cuh"

// Every CUDA runtime call goes through this: an error becomes a std::runtime_error (a
// Python RuntimeError) that names the call and CUDA's own message.
//
// Messages are built with std::to_string and snprintf, never with iostreams: on a GPU machine
// (GCC 13, nvcc 13) formatting a number with std::ostringstream in this nvcc-compiled file
// crashed inside libstdc++'s locale code (seen, with a backtrace, in the refusal of a state
// larger than the device).
#define CUDA_CHECK(call) check((call), #call, __FILE__, __LINE__)

namespace lesde::cuda::LESDE_CUDA_PLATFORM {

void check(cudaError_t err, const char* what, const char* file, int line) {
  if (err == cudaSuccess) return;
  const std::string msg = std::string("CUDA error ") + cudaGetErrorName(err) + ": " +
                          cudaGetErrorString(err) + " (in " + what + " at " + file + ":" +
                          std::to_string(line) + ")";
  (void)cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  throw std::runtime_error(msg);
}

// A device allocation that frees itself.
template <class T>
struct DeviceArray {
  T* ptr = nullptr;
  size_t count = 0;
  DeviceArray() = default;
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() {
    if (ptr) (void)cudaFree(ptr);  // never throws from a destructor
  }
  void allocate(size_t n) {
    count = n;
    if (n > 0) CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&ptr), n * sizeof(T)));
  }
  size_t bytes() const { return count * sizeof(T); }
};

template <class T>
void upload_vector(DeviceArray<T>& dst, const std::vector<T>& src, cudaStream_t stream) {
  dst.allocate(src.size());
  if (!src.empty())
    CUDA_CHECK(cudaMemcpyAsync(dst.ptr, src.data(), src.size() * sizeof(T), cudaMemcpyHostToDevice,
                               stream));
}

// Local memory the driver reserves for one kernel at full occupancy.
template <class F>
size_t local_reserve(F kernel, int device) {
  cudaFuncAttributes attr{};
  CUDA_CHECK(cudaFuncGetAttributes(&attr, kernel));
  int sms = 0, threads = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  CUDA_CHECK(cudaDeviceGetAttribute(&threads, cudaDevAttrMaxThreadsPerMultiProcessor, device));
  return size_t(attr.localSizeBytes) * size_t(sms) * size_t(threads);
}

std::string gib(size_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3g GiB", double(bytes) / double(size_t(1) << 30));
  return text;
}

// ---------------------------------------------------------------- device queries

int count_devices() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

DeviceInfo current_device_info() {
  DeviceInfo info;
  CUDA_CHECK(cudaGetDevice(&info.index));
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, info.index));
  info.name = prop.name;
  info.compute_major = prop.major;
  info.compute_minor = prop.minor;
  info.multiprocessors = prop.multiProcessorCount;
  int clock_khz = 0;  // cudaDeviceProp::memoryClockRate is gone in CUDA 13: ask the attribute
  CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, info.index));
  CUDA_CHECK(
      cudaDeviceGetAttribute(&info.bus_width_bits, cudaDevAttrGlobalMemoryBusWidth, info.index));
  info.memory_clock_khz = clock_khz;
  info.peak_bandwidth = 2.0 * clock_khz * 1e3 * (info.bus_width_bits / 8.0);
  CUDA_CHECK(cudaMemGetInfo(&info.free_memory, &info.total_memory));
  return info;
}

// ---------------------------------------------------------------- DeviceState

template <class Real>
struct Impl {
  EngineConfig cfg;
  int device = 0;
  int64_t N = 0;
  Tables tables;
  cudaStream_t stream = nullptr;
  DeviceArray<Real> X;
  DeviceArray<int32_t> labels, classes, replicas;
  DeviceArray<int32_t> seg_begin, seg_end, seg_clo, seg_chi, be_class, be_first, be_last;
  DeviceArray<int64_t> seg_off;
  DeviceArray<double> head, means, coef, seg_partial, block_partial;
  std::vector<double> host_partial;
  void* pinned = nullptr;  // the host features buffer, while page-locked by us
  // Records: their segments, the label means and counts of pass 2, the partial totals (by
  // segment, then by block) of up to record_slots replicas at a time, the gathered rows.
  RecordSegments record_segments;
  DeviceArray<int64_t> rec_begin, rec_end, rec_samples;
  DeviceArray<int32_t> rec_first;
  DeviceArray<double> rec_means, rec_counts, rec_partial, rec_blocks, rec_rows;
  int64_t record_slots = 1;

  explicit Impl(const EngineConfig& c)
      : cfg(c), N(c.n_samples()), tables(c), record_segments(c.n_samples()) {}
  ~Impl() {
    if (pinned) (void)cudaHostUnregister(pinned);
    if (stream) (void)cudaStreamDestroy(stream);
  }
  void sync() const { CUDA_CHECK(cudaStreamSynchronize(stream)); }
  void use_device() const { CUDA_CHECK(cudaSetDevice(device)); }
};

// The platform's DeviceState: the buffers of Impl, and the launches.
template <class Real>
class PlatformState final : public DeviceState<Real> {
 public:
  PlatformState(const EngineConfig& cfg, const int32_t* classes);
  ~PlatformState() override;
  static size_t bytes_needed(const EngineConfig& cfg);

  void pin_host(Real* features) override;
  void upload(const Real* features, const int32_t* labels) override;
  void download_features(Real* features) const override;
  void download_labels(int32_t* labels) const override;
  void draw_initial_state() override;
  void sweep(Move move, const std::vector<int32_t>& replicas, uint32_t step,
             const std::vector<double>& coef, double dt, double noise_scale,
             std::vector<double>& sums) override;
  void first_moments(const std::vector<int32_t>& replicas, std::vector<double>& out) override;
  void second_moments(const std::vector<int32_t>& replicas, const std::vector<double>& means,
                      const std::vector<double>& counts, std::vector<double>& out) override;
  void copy_samples(int32_t r, const std::vector<int64_t>& samples, double* out) override;

  // Replicas whose record partials fit in at most kRecordBytes at once.
  static int64_t record_slots(const EngineConfig& cfg);
  static constexpr size_t kRecordBytes = size_t(256) << 20;

 private:
  std::unique_ptr<Impl<Real>> impl_;
};

template <class Real>
size_t PlatformState<Real>::bytes_needed(const EngineConfig& cfg) {
  const Tables t(cfg);
  const size_t R = size_t(cfg.replicas), N = size_t(cfg.n_samples());
  const size_t K = size_t(cfg.K), p = size_t(cfg.p);
  return R * N * p * sizeof(Real)                         // features
         + R * N * sizeof(int32_t) + N * sizeof(int32_t)  // labels, classes
         + t.table_bytes()                                // segment and block tables
         + R * size_t(t.seg_entries + t.block_entries()) * p * sizeof(double)  // partials
         + R * (K * p * sizeof(double) + sizeof(int32_t))  // coefficients, replica list
         + 2 * K * p * sizeof(double)                      // head, initial means
         + size_t(record_slots(cfg)) * (K * p + K) * sizeof(double)  // records: means, counts
         + kRecordBytes                                    // records: partial totals
         + cfg.record_samples.size() * (sizeof(int64_t) + p * sizeof(double));  // trajectories
}

template <class Real>
int64_t PlatformState<Real>::record_slots(const EngineConfig& cfg) {
  const RecordSegments segments(cfg.n_samples());
  const RecordLayout at(cfg);
  const int64_t width = std::max(at.first_width(), at.second_width());
  const int64_t per_slot = (segments.count() + segments.blocks()) * width * int64_t(sizeof(double));
  return std::max<int64_t>(1, std::min<int64_t>(cfg.replicas, int64_t(kRecordBytes) / per_slot));
}

template <class Real>
PlatformState<Real>::PlatformState(const EngineConfig& cfg, const int32_t* classes) {
  cfg.check();
  if (cfg.process != Process::SDE)
    throw std::invalid_argument("CUDA backend: only process 'sde' runs on the GPU");
  if (cfg.K > kMaxDim || cfg.p > kMaxDim)
    throw std::invalid_argument(
        "CUDA backend: n_classes and dim must be <= " + std::to_string(kMaxDim) + " (got " +
        std::to_string(cfg.K) + " and " + std::to_string(cfg.p) + "); use the CPU backend");
  if (count_devices() < 1) throw std::runtime_error("CUDA backend: no CUDA device is available");
  impl_ = std::make_unique<Impl<Real>>(cfg);
  Impl<Real>& m = *impl_;
  CUDA_CHECK(cudaGetDevice(&m.device));

  // Refuse a state that does not fit, before allocating anything.
  size_t local = local_reserve(init_kernel<Real>, m.device);
  for (Move move : {Move::None, Move::Drift, Move::Shift})
    with_sweep_kernel<Real>(move, cfg.noise, [&](auto kernel) {
      local = std::max(local, local_reserve(kernel, m.device));
    });
  const size_t margin = size_t(64) << 20;  // allocation granularity, the CUDA context's growth
  const size_t needed = bytes_needed(cfg) + local + margin;
  size_t free_bytes = 0, total_bytes = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  if (needed > free_bytes) {
    cudaDeviceProp prop{};
    CUDA_CHECK(cudaGetDeviceProperties(&prop, m.device));
    throw std::runtime_error(
        "CUDA backend: this run needs " + std::to_string(needed) + " bytes (" + gib(needed) +
        ") of device memory, but device " + std::to_string(m.device) + " (" + prop.name +
        ") has only " + std::to_string(free_bytes) + " bytes (" + gib(free_bytes) + ") free of " +
        std::to_string(total_bytes) + "; use fewer samples or replicas, dtype float32, or the CPU "
        "backend");
  }

  CUDA_CHECK(cudaStreamCreateWithFlags(&m.stream, cudaStreamNonBlocking));
  const int64_t R = cfg.replicas, K = cfg.K, p = cfg.p;
  m.X.allocate(size_t(R * m.N * p));
  m.labels.allocate(size_t(R * m.N));
  m.classes.allocate(size_t(m.N));
  CUDA_CHECK(
      cudaMemcpyAsync(m.classes.ptr, classes, m.classes.bytes(), cudaMemcpyHostToDevice, m.stream));
  const Tables& t = m.tables;
  upload_vector(m.seg_begin, t.seg_begin, m.stream);
  upload_vector(m.seg_end, t.seg_end, m.stream);
  upload_vector(m.seg_clo, t.seg_clo, m.stream);
  upload_vector(m.seg_chi, t.seg_chi, m.stream);
  upload_vector(m.seg_off, t.seg_off, m.stream);
  upload_vector(m.be_class, t.be_class, m.stream);
  upload_vector(m.be_first, t.be_first, m.stream);
  upload_vector(m.be_last, t.be_last, m.stream);
  upload_vector(m.head, cfg.head, m.stream);
  upload_vector(m.means, cfg.init_means, m.stream);
  m.replicas.allocate(size_t(R));
  m.coef.allocate(size_t(R * K * p));
  m.seg_partial.allocate(size_t(R * t.seg_entries * p));
  m.block_partial.allocate(size_t(R * t.block_entries() * p));
  const RecordSegments& rs = m.record_segments;
  upload_vector(m.rec_begin, rs.begin, m.stream);
  upload_vector(m.rec_end, rs.end, m.stream);
  upload_vector(m.rec_first, rs.first, m.stream);
  upload_vector(m.rec_samples, cfg.record_samples, m.stream);
  m.record_slots = record_slots(cfg);
  const RecordLayout at(cfg);
  const int64_t width = std::max(at.first_width(), at.second_width());
  m.rec_means.allocate(size_t(m.record_slots * K * p));
  m.rec_counts.allocate(size_t(m.record_slots * K));
  m.rec_partial.allocate(size_t(m.record_slots * rs.count() * width));
  m.rec_blocks.allocate(size_t(m.record_slots * rs.blocks() * width));
  m.rec_rows.allocate(cfg.record_samples.size() * size_t(p));
  m.sync();  // the host vectors above may go away
}

template <class Real>
PlatformState<Real>::~PlatformState() = default;

template <class Real>
void PlatformState<Real>::pin_host(Real* features) {
  Impl<Real>& m = *impl_;
  m.use_device();
  if (m.pinned || m.X.bytes() == 0) return;
  if (cudaHostRegister(features, m.X.bytes(), cudaHostRegisterDefault) == cudaSuccess)
    m.pinned = features;
  else
    (void)cudaGetLastError();  // pageable copies work too, only slower
}

template <class Real>
void PlatformState<Real>::upload(const Real* features, const int32_t* labels) {
  Impl<Real>& m = *impl_;
  m.use_device();
  CUDA_CHECK(cudaMemcpyAsync(m.X.ptr, features, m.X.bytes(), cudaMemcpyHostToDevice, m.stream));
  CUDA_CHECK(
      cudaMemcpyAsync(m.labels.ptr, labels, m.labels.bytes(), cudaMemcpyHostToDevice, m.stream));
  m.sync();
}

template <class Real>
void PlatformState<Real>::download_features(Real* features) const {
  const Impl<Real>& m = *impl_;
  m.use_device();
  CUDA_CHECK(cudaMemcpyAsync(features, m.X.ptr, m.X.bytes(), cudaMemcpyDeviceToHost, m.stream));
  m.sync();
}

template <class Real>
void PlatformState<Real>::download_labels(int32_t* labels) const {
  const Impl<Real>& m = *impl_;
  m.use_device();
  CUDA_CHECK(
      cudaMemcpyAsync(labels, m.labels.ptr, m.labels.bytes(), cudaMemcpyDeviceToHost, m.stream));
  m.sync();
}

template <class Real>
void PlatformState<Real>::draw_initial_state() {
  Impl<Real>& m = *impl_;
  m.use_device();
  InitArgs<Real> a{};
  a.X = m.X.ptr;
  a.labels = m.labels.ptr;
  a.classes = m.classes.ptr;
  a.N = m.N;
  a.total = int64_t(m.cfg.replicas) * m.N;
  a.K = m.cfg.K;
  a.p = m.cfg.p;
  a.seed = m.cfg.seed;
  a.label_noise = m.cfg.label_noise;
  a.init_scale = m.cfg.init_scale;
  a.means = m.means.ptr;  // nullptr when init_means is empty: zeros
  const unsigned grid = std::min<unsigned>(grid_size(a.total), 1u << 20);  // grid-stride loop
  launch(init_kernel<Real>, grid, kThreads, m.stream, a);
  CUDA_CHECK(cudaGetLastError());
  m.sync();
}

template <class Real>
void PlatformState<Real>::sweep(Move move, const std::vector<int32_t>& replicas, uint32_t step,
                              const std::vector<double>& coef, double dt, double noise_scale,
                              std::vector<double>& sums) {
  Impl<Real>& m = *impl_;
  const int K = m.cfg.K, p = m.cfg.p;
  const int64_t n_slots = int64_t(replicas.size()), Kp = int64_t(K) * p;
  if (n_slots == 0) return;
  if (n_slots > m.cfg.replicas) throw std::invalid_argument("sweep: too many replicas listed");
  for (int32_t r : replicas)
    if (r < 0 || r >= m.cfg.replicas) throw std::invalid_argument("sweep: replica out of range");
  if (move != Move::None && int64_t(coef.size()) != n_slots * Kp)
    throw std::invalid_argument("sweep: coef must hold one K x p matrix per listed replica");
  m.use_device();
  const Tables& t = m.tables;
  CUDA_CHECK(cudaMemcpyAsync(m.replicas.ptr, replicas.data(), n_slots * sizeof(int32_t),
                             cudaMemcpyHostToDevice, m.stream));
  if (move != Move::None)
    CUDA_CHECK(cudaMemcpyAsync(m.coef.ptr, coef.data(), n_slots * Kp * sizeof(double),
                               cudaMemcpyHostToDevice, m.stream));

  SweepArgs<Real> a{};
  a.X = m.X.ptr;
  a.labels = m.labels.ptr;
  a.classes = m.classes.ptr;
  a.N = m.N;
  a.K = K;
  a.p = p;
  a.spec = SignalSpec{m.cfg.signal, K, p, m.cfg.has_head() ? m.head.ptr : nullptr};
  a.replicas = m.replicas.ptr;
  a.n_slots = n_slots;
  a.coef = m.coef.ptr;
  a.dt = dt;
  a.noise_scale = noise_scale;
  a.noise_seed = m.cfg.noise_seed;
  a.step = step;
  a.n_seg = t.segments();
  a.seg_begin = m.seg_begin.ptr;
  a.seg_end = m.seg_end.ptr;
  a.seg_clo = m.seg_clo.ptr;
  a.seg_chi = m.seg_chi.ptr;
  a.seg_off = m.seg_off.ptr;
  a.seg_entries = t.seg_entries;
  a.seg_partial = m.seg_partial.ptr;
  const unsigned grid = grid_size(n_slots * t.segments() * 32);
  const size_t shared = sweep_shared_bytes<Real>(p);
  with_sweep_kernel<Real>(
      move, m.cfg.noise, [&](auto kernel) { launch(kernel, grid, kThreads, m.stream, a, shared); });
  CUDA_CHECK(cudaGetLastError());

  BlockArgs b{};
  b.n_slots = n_slots;
  b.entries = t.block_entries();
  b.seg_entries = t.seg_entries;
  b.p = p;
  b.be_class = m.be_class.ptr;
  b.be_first = m.be_first.ptr;
  b.be_last = m.be_last.ptr;
  b.seg_clo = m.seg_clo.ptr;
  b.seg_off = m.seg_off.ptr;
  b.seg_partial = m.seg_partial.ptr;
  b.block_partial = m.block_partial.ptr;
  launch(block_sums_kernel, grid_size(n_slots * b.entries * p), kThreads, m.stream, b);
  CUDA_CHECK(cudaGetLastError());

  const size_t n_partial = size_t(n_slots * b.entries * p);
  m.host_partial.resize(n_partial);
  CUDA_CHECK(cudaMemcpyAsync(m.host_partial.data(), m.block_partial.ptr, n_partial * sizeof(double),
                             cudaMemcpyDeviceToHost, m.stream));
  m.sync();

  add_block_partials(t, K, p, n_slots, m.host_partial.data(), sums);
}

// Runs one record pass (kernel: record_first_kernel or record_second_kernel) over the listed
// replicas, record_slots of them at a time, and adds each one's block totals by the tree of
// reduce.hpp.
template <class Real, class Kernel>
void record_pass(Impl<Real>& m, Kernel kernel, int64_t width, const std::vector<int32_t>& replicas,
                 const std::vector<double>* means, const std::vector<double>* counts,
                 std::vector<double>& out) {
  const int K = m.cfg.K, p = m.cfg.p;
  const RecordSegments& rs = m.record_segments;
  out.assign(replicas.size() * size_t(width), 0.0);
  for (size_t done = 0; done < replicas.size();) {
    const int64_t n_slots = std::min<int64_t>(m.record_slots, int64_t(replicas.size() - done));
    CUDA_CHECK(cudaMemcpyAsync(m.replicas.ptr, replicas.data() + done, n_slots * sizeof(int32_t),
                               cudaMemcpyHostToDevice, m.stream));
    if (means != nullptr) {
      CUDA_CHECK(cudaMemcpyAsync(m.rec_means.ptr, means->data() + done * K * p,
                                 n_slots * K * p * sizeof(double), cudaMemcpyHostToDevice, m.stream));
      CUDA_CHECK(cudaMemcpyAsync(m.rec_counts.ptr, counts->data() + done * K,
                                 n_slots * K * sizeof(double), cudaMemcpyHostToDevice, m.stream));
    }
    RecordArgs<Real> a{};
    a.X = m.X.ptr;
    a.labels = m.labels.ptr;
    a.classes = m.classes.ptr;
    a.N = m.N;
    a.K = K;
    a.p = p;
    a.spec = SignalSpec{m.cfg.signal, K, p, m.cfg.has_head() ? m.head.ptr : nullptr};
    a.replicas = m.replicas.ptr;
    a.n_slots = n_slots;
    a.n_seg = rs.count();
    a.seg_begin = m.rec_begin.ptr;
    a.seg_end = m.rec_end.ptr;
    a.means = m.rec_means.ptr;
    a.counts = m.rec_counts.ptr;
    a.width = width;
    a.partial = m.rec_partial.ptr;
    launch(kernel, grid_size(n_slots * rs.count() * 32), kThreads, m.stream, a);
    CUDA_CHECK(cudaGetLastError());
    SegmentSumArgs b{n_slots, rs.count(), rs.blocks(), width, m.rec_first.ptr, m.rec_partial.ptr,
                     m.rec_blocks.ptr};
    launch(record_block_sums_kernel, grid_size(n_slots * rs.blocks() * width), kThreads, m.stream, b);
    CUDA_CHECK(cudaGetLastError());
    std::vector<double> blocks(size_t(n_slots * rs.blocks() * width));
    CUDA_CHECK(cudaMemcpyAsync(blocks.data(), m.rec_blocks.ptr, blocks.size() * sizeof(double),
                               cudaMemcpyDeviceToHost, m.stream));
    m.sync();
    for (int64_t slot = 0; slot < n_slots; ++slot) {  // the blocks by the tree of reduce.hpp
      TreeSum tree(Blocks(m.cfg.n_samples()), width);
      for (int64_t b2 = 0; b2 < rs.blocks(); ++b2)
        tree.push_leaf(b2, blocks.data() + (slot * rs.blocks() + b2) * width);
      tree.total(out.data() + (done + size_t(slot)) * width);
    }
    done += size_t(n_slots);
  }
}

template <class Real>
void PlatformState<Real>::first_moments(const std::vector<int32_t>& replicas,
                                        std::vector<double>& out) {
  Impl<Real>& m = *impl_;
  m.use_device();
  record_pass(m, record_first_kernel<Real>, RecordLayout(m.cfg).first_width(), replicas, nullptr,
              nullptr, out);
}

template <class Real>
void PlatformState<Real>::second_moments(const std::vector<int32_t>& replicas,
                                         const std::vector<double>& means,
                                         const std::vector<double>& counts,
                                         std::vector<double>& out) {
  Impl<Real>& m = *impl_;
  m.use_device();
  record_pass(m, record_second_kernel<Real>, RecordLayout(m.cfg).second_width(), replicas,
              &means, &counts, out);
}

template <class Real>
void PlatformState<Real>::copy_samples(int32_t r, const std::vector<int64_t>& samples,
                                       double* out) {
  Impl<Real>& m = *impl_;
  if (samples.empty()) return;
  if (samples != m.cfg.record_samples)
    throw std::invalid_argument("copy_samples: only the run's record_samples are on the device");
  m.use_device();
  const int64_t S = int64_t(samples.size());
  GatherArgs<Real> a{m.X.ptr, m.N, m.cfg.p, r, m.rec_samples.ptr, S, m.rec_rows.ptr};
  launch(gather_kernel<Real>, grid_size(S * m.cfg.p), kThreads, m.stream, a);
  CUDA_CHECK(cudaGetLastError());
  CUDA_CHECK(cudaMemcpyAsync(out, m.rec_rows.ptr, S * m.cfg.p * sizeof(double),
                             cudaMemcpyDeviceToHost, m.stream));
  m.sync();
}

}  // namespace lesde::cuda::LESDE_CUDA_PLATFORM

// ---------------------------------------------------------------- this platform's entry points

namespace lesde::cuda {

using LESDE_CUDA_PLATFORM::kPlatform;

template <>
int device_count<kPlatform>() noexcept {
  return LESDE_CUDA_PLATFORM::count_devices();
}

template <>
DeviceInfo device_info<kPlatform>() {
  return LESDE_CUDA_PLATFORM::current_device_info();
}

template <>
std::unique_ptr<DeviceState<float>> make_device_state<kPlatform, float>(const EngineConfig& cfg,
                                                                         const int32_t* classes) {
  return std::make_unique<LESDE_CUDA_PLATFORM::PlatformState<float>>(cfg, classes);
}

template <>
std::unique_ptr<DeviceState<double>> make_device_state<kPlatform, double>(
    const EngineConfig& cfg, const int32_t* classes) {
  return std::make_unique<LESDE_CUDA_PLATFORM::PlatformState<double>>(cfg, classes);
}

}  // namespace lesde::cuda
