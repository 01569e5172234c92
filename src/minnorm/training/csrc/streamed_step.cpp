// The streamed GD step (streamed_step.h), written once over a pack of 16 lanes whose instruction
// set is chosen at build time: -DMINNORM_ISA_AVX512, -DMINNORM_ISA_AVX2 or neither (portable C++).
//
// Every floating-point operation is that of inductor's compiled streamed formula on AVX-512, in
// the same order (minnorm.training.streamed_kernel states it; built with -ffp-contract=off so no
// a * b + c becomes a fused multiply-add), and the three packs perform the same operations lane
// by lane, so all three builds give the same bits.
#include "streamed_step.h"

#include <algorithm>
#include <utility>

#if defined(MINNORM_ISA_AVX512)
#include "lanes_avx512.h"
#elif defined(MINNORM_ISA_AVX2)
#include "lanes_avx2.h"
#else
#include "lanes_portable.h"
#endif

#ifndef MINNORM_MAX_P
#error "build with -DMINNORM_MAX_P=<largest p> (minnorm.training.gd_step.STREAMED_MAX_P)"
#endif

namespace minnorm {
namespace {

constexpr int64_t L = kLanes;
constexpr int64_t K = kBlockChunks;
// Lanes per group: the instruction set's vector (lanes_*.h); the 16 lanes are W-lane groups.
constexpr int64_t W = Lanes::kWidth;
static_assert(L % W == 0, "a group of lanes must divide the 16 lanes");

// Adds to the lane sums of NP consecutive points i0, ... (a pair, or the last point alone) the
// neurons of block jb (chunks jb K .. jb K + K - 1) and writes those points' pattern bits. Lane l
// of point i sums c_r relu(z_ir) over the block's neurons r = l (mod L) in order, with
// z_ir = ((x_i0 w_r0 + x_i1 w_r1) + x_i2 w_r2) + ... and c_r = a_r m^-1/2. The lanes run W at a
// time (group g: lanes g .. g + W - 1); each lane's sum is the same whatever W.
template <int64_t P, int NP>
void forward(const double* Wt, const double* X, const double* a, double inv_sqrt_m, int64_t n,
             int64_t m, int64_t jb, int64_t i0, double* lanes, uint16_t* bits) {
  double x[NP][P];
  for (int q = 0; q < NP; ++q)
    for (int64_t k = 0; k < P; ++k) x[q][k] = X[(i0 + q) * P + k];
  const Lanes scale_c = Lanes::fill(inv_sqrt_m);
  uint16_t* block_bits = bits + jb * n * K;
  const int64_t j0 = jb * K * L, in_block = std::min(K * L, m - j0);
  const int64_t chunks = (in_block + L - 1) / L;
  for (int64_t g = 0; g < L; g += W) {
    Lanes acc[NP];
    for (int q = 0; q < NP; ++q) acc[q] = Lanes::load(lanes + (i0 + q) * L + g);
    for (int64_t c = 0; c < chunks; ++c) {
      // count < W: the last neurons of the network (the other lanes' values are never stored).
      const int64_t count = std::min(in_block - c * L, L) - g;
      const int64_t j = j0 + c * L + g;
      if (count <= 0) continue;  // no neuron in this group of the last chunk: bits unused
      Lanes w[P];
      for (int64_t k = 0; k < P; ++k)
        w[k] = count < W ? Lanes::load(Wt + k * m + j, count) : Lanes::load(Wt + k * m + j);
      const Lanes c_r = (count < W ? Lanes::load(a + j, count) : Lanes::load(a + j)) * scale_c;
      for (int q = 0; q < NP; ++q) {
        Lanes z = Lanes::fill(x[q][0]) * w[0];
        for (int64_t k = 1; k < P; ++k) z = z + Lanes::fill(x[q][k]) * w[k];
        uint16_t& chunk_bits = block_bits[(i0 + q) * K + c];
        const unsigned here = z.positive_bits() << g;  // the first group sets, the others add
        chunk_bits = static_cast<uint16_t>(g == 0 ? here : chunk_bits | here);
        const Lanes term = Lanes::relu(z) * c_r;
        acc[q] = count < W ? Lanes::first_from(acc[q], acc[q] + term, count) : acc[q] + term;
      }
    }
    for (int q = 0; q < NP; ++q) acc[q].store(lanes + (i0 + q) * L + g);
  }
}

// dL/dW of one run (as Wt: P x m) from its pattern bits and rx[i][k] = r_i x~_ik:
// dL/dw_rk = c_r sum_i [z_ir > 0] rx_ik, the sum over i in order (W lanes at a time).
template <int64_t P>
void backward(const uint16_t* bits, const double* rx, const double* a, double inv_sqrt_m,
              int64_t n, int64_t m, double* G) {
  const Lanes scale_c = Lanes::fill(inv_sqrt_m);
  for (int64_t j0 = 0; j0 < m; j0 += L) {
    const int64_t chunk = j0 / L;
    const uint16_t* column = bits + (chunk / K) * n * K + chunk % K;
    for (int64_t g = 0; g < L && j0 + g < m; g += W) {
      const int64_t j = j0 + g, count = m - j < W ? m - j : W;
      Lanes acc[P];
      for (int64_t k = 0; k < P; ++k) acc[k] = Lanes::zero();
      for (int64_t i = 0; i < n; ++i) {
        const Lanes::Mask active = Lanes::mask_of(static_cast<unsigned>(column[i * K]) >> g);
        for (int64_t k = 0; k < P; ++k) acc[k] = acc[k].add_where(active, rx[i * P + k]);
      }
      const Lanes c = Lanes::load(a + j, count) * scale_c;
      for (int64_t k = 0; k < P; ++k) (acc[k] * c).store(G + k * m + j, count);
    }
  }
}

// The sum of 16 lanes in the order of at::vec::vec_reduce_all over VectorizedN<double, 2> (the
// compiled formula's, and the old kernel's `0 +`): 0 + ((((v0 + v1) + v2) + ...) + v7) with
// v_j = lane j + lane j + 8.
double lane_sum(const double* lane) {
  double total = lane[0] + lane[8];
  for (int j = 1; j < 8; ++j) total = total + (lane[j] + lane[j + 8]);
  return 0.0 + total;
}

template <int64_t P>
void step(const double* Wt, const double* X, const double* y, const double* a, double scale,
          double inv_sqrt_m, double* G, double* loss, double* f, double* lanes, double* rx,
          uint16_t* bits, int64_t S, int64_t n, int64_t m, int64_t y_stride) {
  for (int64_t s = 0; s < S; ++s) {
    const double* Ws = Wt + s * P * m;
    const double* as = a + s * m;
    const double* ys = y + s * y_stride;
    std::fill(lanes, lanes + n * L, 0.0);
    for (int64_t jb = 0; jb * K * L < m; ++jb) {
      int64_t i = 0;
      for (; i + 1 < n; i += 2) forward<P, 2>(Ws, X, as, inv_sqrt_m, n, m, jb, i, lanes, bits);
      if (i < n) forward<P, 1>(Ws, X, as, inv_sqrt_m, n, m, jb, i, lanes, bits);
    }
    for (int64_t i = 0; i < n; ++i) f[i] = lane_sum(lanes + i * L);
    // L = (scale / 2) sum_i (f_i - y_i)^2, point i in lane i mod 16 as the neurons above.
    double acc[L] = {};
    for (int64_t i = 0; i < n; ++i) {
      const double e = f[i] - ys[i];
      acc[i % L] = acc[i % L] + e * e;
    }
    loss[s] = (scale * 0.5) * lane_sum(acc);
    for (int64_t i = 0; i < n; ++i) {
      const double r = (f[i] - ys[i]) * scale;
      for (int64_t k = 0; k < P; ++k) rx[i * P + k] = r * X[i * P + k];
    }
    backward<P>(bits, rx, as, inv_sqrt_m, n, m, G + s * P * m);
  }
}

template <int64_t... Q, typename... Args>
bool step_for(std::integer_sequence<int64_t, Q...>, int64_t p, Args... args) {
  return ((p == Q + 1 ? (step<Q + 1>(args...), true) : false) || ...);
}

}  // namespace

bool streamed_step(int64_t p, const double* Wt, const double* X, const double* y, const double* a,
                   double scale, double inv_sqrt_m, double* G, double* loss, double* f,
                   double* lanes, double* rx, uint16_t* bits, int64_t S, int64_t n, int64_t m,
                   int64_t y_stride) {
  return step_for(std::make_integer_sequence<int64_t, MINNORM_MAX_P>{}, p, Wt, X, y, a, scale,
                  inv_sqrt_m, G, loss, f, lanes, rx, bits, S, n, m, y_stride);
}

}  // namespace minnorm
