// Fused NADE teacher-forced pass and its backward pass for the CPU, as XLA FFI custom calls.
//
// The same arithmetic as `nade_kernel.py` (see its docstring for the notation):
//
//   a_d = c + sum_{j<d} x_j W_j,  h_d = sigmoid(a_d),  params_d = b_d + h_d V_d
//
// but each example's running activation a is walked position by position in registers and
// L1, a tile of `kRows` examples at a time so that W_d and V_d are read once per tile, and
// the batch's tiles are shared among threads. XLA:CPU runs the chunked JAX kernel op by op,
// making ~14 passes over every [B, C, H] intermediate in memory; here nothing of size
// B x D x H is ever written. The forward pass saves the activation at the start of every
// chunk of C positions; the backward pass recomputes a chunk's hidden units from it (exact,
// no subtraction) and walks the chunk in reverse with the suffix sum
// S_j = sum_{d>j} delta_d:
//
//   dV_d += h_d^T g_d,  delta_d = (g_d V_d^T) * h_d * (1 - h_d),
//   dW_j += x_j S_j,    dx_j = S_j . W_j,    dc = S_{-1} (per example).
//
// Built on first use by `nade_native.py` (g++ -O3 -march=native); float32 only.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#ifdef __linux__
#include <sched.h>
#endif

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kRows = 8;  // examples per tile: W_d and V_d are read once per tile

// exp for the sigmoid, written out so that the compiler vectorizes it without -ffast-math
// (glibc's vector expf needs it, and it would drop NaN/Inf semantics everywhere): Cephes'
// expf, x = n ln 2 + r with |r| <= ln(2)/2, exp(r) by a degree-7 minimax polynomial, 2^n by
// building the float's exponent bits; within ~2 ulp of expf on [-87, 88], the clamped range.
inline float Exp(float x) {
  const float clamped = std::min(std::max(x, -87.0f), 88.0f);
  const float n = std::floor(clamped * 1.44269504088896341f + 0.5f);
  const float r = clamped - n * 0.693359375f + n * 2.12194440e-4f;  // ln 2 in two parts
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * (r * r) + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return y * scale;
}

inline float sigmoid(float a) {
  const float s = 1.0f / (1.0f + Exp(-a));
  return a != a ? a : s;  // NaN stays NaN (the clamp would make it finite)
}

int NumThreads(int64_t tiles) {
  int64_t threads = std::thread::hardware_concurrency();
#ifdef __linux__
  cpu_set_t allowed;  // the CPUs this process may run on (a container's cpuset), not the host's
  if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0) threads = CPU_COUNT(&allowed);
#endif
  if (const char* env = std::getenv("ARJAX_NADE_THREADS")) threads = std::atoi(env);
  return static_cast<int>(std::max<int64_t>(1, std::min(threads, tiles)));
}

// Runs body(thread, first_tile, end_tile) over `tiles` tiles split evenly among threads. An
// exception in a worker (std::bad_alloc, say) is rethrown here after all have joined, where
// `Guarded` turns it into an error of the call; escaping a std::thread it would abort the process.
template <typename Body>
void ParallelTiles(int64_t tiles, int threads, Body body) {
  if (threads == 1) {
    body(0, 0, tiles);
    return;
  }
  std::vector<std::exception_ptr> errors(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    int64_t begin = tiles * t / threads, end = tiles * (t + 1) / threads;
    pool.emplace_back([=, &body, &errors] {
      try {
        body(t, begin, end);
      } catch (...) {
        errors[t] = std::current_exception();
      }
    });
  }
  for (auto& thread : pool) thread.join();
  for (const auto& error : errors)
    if (error) std::rethrow_exception(error);
}

// Runs `body` (which fills the results), turning an exception (threads that cannot start,
// memory that cannot be had) into an error of the custom call instead of an abort.
template <typename Body>
ffi::Error Guarded(Body body) {
  try {
    body();
    return ffi::Error::Success();
  } catch (const std::exception& error) {
    return ffi::Error(ffi::ErrorCode::kInternal, std::string("arjax NADE kernel: ") + error.what());
  }
}

inline void Sigmoid(const float* __restrict a, float* __restrict h, int64_t H) {
#pragma omp simd
  for (int64_t i = 0; i < H; ++i) h[i] = sigmoid(a[i]);
}

// params = b_d + h V_d for one example.
inline void Readout(const float* __restrict h, const float* __restrict Vd, const float* __restrict bd,
                    float* __restrict out, int64_t H, int64_t P) {
  if (P == 1) {
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < H; ++i) acc += h[i] * Vd[i];
    out[0] = bd[0] + acc;
    return;
  }
  for (int64_t p = 0; p < P; ++p) out[p] = bd[p];
  for (int64_t i = 0; i < H; ++i)
    for (int64_t p = 0; p < P; ++p) out[p] += h[i] * Vd[i * P + p];
}

// a += x W_d.
inline void Advance(float* __restrict a, float xv, const float* __restrict Wd, int64_t H) {
#pragma omp simd
  for (int64_t i = 0; i < H; ++i) a[i] += xv * Wd[i];
}

// The running sum only moves where x_d != 0 (~13% of binarized MNIST's pixels), so the
// hidden units are recomputed only then: between two such positions h_d is the same vector.

ffi::Error ForwardImpl(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> W, ffi::Buffer<ffi::F32> c,
                       ffi::Buffer<ffi::F32> V, ffi::Buffer<ffi::F32> b, int64_t chunk,
                       ffi::ResultBuffer<ffi::F32> params, ffi::ResultBuffer<ffi::F32> carries) {
  const int64_t B = x.dimensions()[0], D = x.dimensions()[1], H = W.dimensions()[1];
  const int64_t P = V.dimensions()[2], C = chunk, K = (D + C - 1) / C;
  const float *xs = x.typed_data(), *Ws = W.typed_data(), *cs = c.typed_data();
  const float *Vs = V.typed_data(), *bs = b.typed_data();
  float *out = params->typed_data(), *saved = carries->typed_data();
  const int64_t tiles = (B + kRows - 1) / kRows;
  return Guarded([&] {
    ParallelTiles(tiles, NumThreads(tiles), [&](int, int64_t begin, int64_t end) {
      std::vector<float> a(kRows * H), h(kRows * H);
      bool stale[kRows];
      for (int64_t tile = begin; tile < end; ++tile) {
        const int64_t n0 = tile * kRows, rows = std::min(kRows, B - n0);
        for (int64_t r = 0; r < rows; ++r) {
          std::memcpy(&a[r * H], cs + (n0 + r) * H, H * sizeof(float));
          stale[r] = true;
        }
        for (int64_t d = 0; d < D; ++d) {
          const float *Wd = Ws + d * H, *Vd = Vs + d * H * P, *bd = bs + d * P;
          for (int64_t r = 0; r < rows; ++r) {
            const int64_t n = n0 + r;
            float *ar = &a[r * H], *hr = &h[r * H];
            if (d % C == 0) std::memcpy(saved + (n * K + d / C) * H, ar, H * sizeof(float));
            if (stale[r]) Sigmoid(ar, hr, H);
            Readout(hr, Vd, bd, out + (n * D + d) * P, H, P);
            const float xv = xs[n * D + d];
            stale[r] = xv != 0.0f;
            if (stale[r]) Advance(ar, xv, Wd, H);
          }
        }
      }
    });
  });
}

ffi::Error BackwardImpl(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> W, ffi::Buffer<ffi::F32> V,
                        ffi::Buffer<ffi::F32> carries, ffi::Buffer<ffi::F32> g, int64_t chunk,
                        ffi::ResultBuffer<ffi::F32> dx_out, ffi::ResultBuffer<ffi::F32> dW_out,
                        ffi::ResultBuffer<ffi::F32> dc_out, ffi::ResultBuffer<ffi::F32> dV_out) {
  const int64_t B = x.dimensions()[0], D = x.dimensions()[1], H = W.dimensions()[1];
  const int64_t P = V.dimensions()[2], C = chunk, K = (D + C - 1) / C;
  const float *xs = x.typed_data(), *Ws = W.typed_data(), *Vs = V.typed_data();
  const float *saved = carries.typed_data(), *gs = g.typed_data();
  float *dx = dx_out->typed_data(), *dc = dc_out->typed_data();
  const int64_t tiles = (B + kRows - 1) / kRows;
  const int threads = NumThreads(tiles);
  return Guarded([&] {
    // Each thread sums its examples' dW and dV; the sums are added up at the end.
    std::vector<std::vector<float>> dWs(threads), dVs(threads);
    ParallelTiles(tiles, threads, [&](int t, int64_t begin, int64_t end) {
      std::vector<float>& dW = dWs[t];
      std::vector<float>& dV = dVs[t];
      dW.assign(D * H, 0.0f);
      dV.assign(D * H * P, 0.0f);
      // A chunk's distinct hidden units h and h (1 - h) per example (at most C of each), and
      // which of them each position uses.
      std::vector<float> hs(kRows * C * H), us(kRows * C * H), S(kRows * H), a(H), gv(H);
      std::vector<int64_t> slot(kRows * C);
      for (int64_t tile = begin; tile < end; ++tile) {
        const int64_t n0 = tile * kRows, rows = std::min(kRows, B - n0);
        std::fill(S.begin(), S.end(), 0.0f);
        for (int64_t k = K - 1; k >= 0; --k) {
          const int64_t d0 = k * C, d1 = std::min(D, d0 + C);
          // The chunk's hidden units, recomputed from the activation saved at its start.
          for (int64_t r = 0; r < rows; ++r) {
            const int64_t n = n0 + r;
            std::memcpy(a.data(), saved + (n * K + k) * H, H * sizeof(float));
            int64_t next = 0;
            bool stale = true;
            for (int64_t d = d0; d < d1; ++d) {
              if (stale) {
                float *hd = &hs[(r * C + next) * H], *ud = &us[(r * C + next) * H];
                Sigmoid(a.data(), hd, H);
#pragma omp simd
                for (int64_t i = 0; i < H; ++i) ud[i] = hd[i] * (1.0f - hd[i]);
                ++next;
              }
              slot[r * C + d - d0] = next - 1;
              const float xv = xs[n * D + d];
              stale = xv != 0.0f;
              if (stale && d + 1 < d1) Advance(a.data(), xv, Ws + d * H, H);
            }
          }
          for (int64_t d = d1 - 1; d >= d0; --d) {
            const float *Wd = Ws + d * H, *Vd = Vs + d * H * P;
            float *dWd = &dW[d * H], *dVd = &dV[d * H * P];
            for (int64_t r = 0; r < rows; ++r) {
              const int64_t n = n0 + r;
              const int64_t s = (r * C + slot[r * C + d - d0]) * H;
              const float *hd = &hs[s], *ud = &us[s];
              const float* gd = gs + (n * D + d) * P;
              float* Sr = &S[r * H];
              // dx_d = S . W_d and dW_d += x_d S, with S summing the deltas after d.
              float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
              for (int64_t i = 0; i < H; ++i) acc += Sr[i] * Wd[i];
              dx[n * D + d] = acc;
              const float xv = xs[n * D + d];
              if (xv != 0.0f) Advance(dWd, xv, Sr, H);
              if (P == 1) {
                const float g0 = gd[0];
#pragma omp simd
                for (int64_t i = 0; i < H; ++i) {
                  dVd[i] += hd[i] * g0;
                  Sr[i] += g0 * Vd[i] * ud[i];
                }
              } else {
                for (int64_t i = 0; i < H; ++i) {
                  float sum = 0.0f;
                  for (int64_t p = 0; p < P; ++p) {
                    dVd[i * P + p] += hd[i] * gd[p];
                    sum += gd[p] * Vd[i * P + p];
                  }
                  gv[i] = sum;
                }
#pragma omp simd
                for (int64_t i = 0; i < H; ++i) Sr[i] += gv[i] * ud[i];
              }
            }
          }
        }
        for (int64_t r = 0; r < rows; ++r)  // dc = every delta of the example, summed
          std::memcpy(dc + (n0 + r) * H, &S[r * H], H * sizeof(float));
      }
    });
    float *dW = dW_out->typed_data(), *dV = dV_out->typed_data();
    std::memcpy(dW, dWs[0].data(), D * H * sizeof(float));
    std::memcpy(dV, dVs[0].data(), D * H * P * sizeof(float));
    for (int t = 1; t < threads; ++t) {
      for (int64_t i = 0; i < D * H; ++i) dW[i] += dWs[t][i];
      for (int64_t i = 0; i < D * H * P; ++i) dV[i] += dVs[t][i];
    }
  });
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(ArjaxNadeForward, ForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // x [B, D]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // W [D, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // c [B, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // V [D, H, P]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // b [D, P]
                                  .Attr<int64_t>("chunk")
                                  .Ret<ffi::Buffer<ffi::F32>>()   // params [B, D, P]
                                  .Ret<ffi::Buffer<ffi::F32>>());  // carries [B, K, H]

XLA_FFI_DEFINE_HANDLER_SYMBOL(ArjaxNadeBackward, BackwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()  // x [B, D]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // W [D, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // V [D, H, P]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // carries [B, K, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()  // g = dL/dparams [B, D, P]
                                  .Attr<int64_t>("chunk")
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dx [B, D]
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dW [D, H]
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dc [B, H]
                                  .Ret<ffi::Buffer<ffi::F32>>());  // dV [D, H, P]
