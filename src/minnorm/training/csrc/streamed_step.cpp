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

// Adds to the lane sums of NP consecutive points i0, ... (a pair, or the last point alone) the
// neurons of block jb (chunks jb K .. jb K + K - 1) and writes those points' pattern bits. Lane l
// of point i sums c_r relu(z_ir) over the block's neurons r = l (mod L) in order, with
// z_ir = ((x_i0 w_r0 + x_i1 w_r1) + x_i2 w_r2) + ... and c_r = a_r m^-1/2.
template <int64_t P, int NP>
void forward(const double* Wt, const double* X, const double* a, double inv_sqrt_m, int64_t n,
             int64_t m, int64_t jb, int64_t i0, double* lanes, uint16_t* bits) {
  double x[NP][P];
  for (int q = 0; q < NP; ++q)
    for (int64_t k = 0; k < P; ++k) x[q][k] = X[(i0 + q) * P + k];
  Lanes acc[NP];
  for (int q = 0; q < NP; ++q) acc[q] = Lanes::load(lanes + (i0 + q) * L);
  const Lanes scale_c = Lanes::fill(inv_sqrt_m);
  uint16_t* block_bits = bits + jb * n * K;
  // Chunk c of the block; count < L: the last neurons of the network (the other lanes' values
  // are never stored).
  auto chunk = [&](int64_t c, int64_t count) {
    const int64_t j = (jb * K + c) * L;
    Lanes w[P];
    for (int64_t k = 0; k < P; ++k)
      w[k] = count < L ? Lanes::load(Wt + k * m + j, count) : Lanes::load(Wt + k * m + j);
    const Lanes c_r = (count < L ? Lanes::load(a + j, count) : Lanes::load(a + j)) * scale_c;
    for (int q = 0; q < NP; ++q) {
      Lanes z = Lanes::fill(x[q][0]) * w[0];
      for (int64_t k = 1; k < P; ++k) z = z + Lanes::fill(x[q][k]) * w[k];
      block_bits[(i0 + q) * K + c] = z.positive_bits();
      const Lanes term = Lanes::relu(z) * c_r;
      acc[q] = count < L ? Lanes::first_from(acc[q], acc[q] + term, count) : acc[q] + term;
    }
  };
  const int64_t j0 = jb * K * L, in_block = std::min(K * L, m - j0);
  for (int64_t c = 0; c < in_block / L; ++c) chunk(c, L);
  if (in_block % L) chunk(in_block / L, in_block % L);
  for (int q = 0; q < NP; ++q) acc[q].store(lanes + (i0 + q) * L);
}

// dL/dW of one run (as Wt: P x m) from its pattern bits and rx[i][k] = r_i x~_ik:
// dL/dw_rk = c_r sum_i [z_ir > 0] rx_ik, the sum over i in order.
template <int64_t P>
void backward(const uint16_t* bits, const double* rx, const double* a, double inv_sqrt_m,
              int64_t n, int64_t m, double* G) {
  const Lanes scale_c = Lanes::fill(inv_sqrt_m);
  for (int64_t j = 0; j < m; j += L) {
    Lanes acc[P];
    for (int64_t k = 0; k < P; ++k) acc[k] = Lanes::zero();
    const int64_t chunk = j / L;
    const uint16_t* column = bits + (chunk / K) * n * K + chunk % K;
    for (int64_t i = 0; i < n; ++i) {
      const Lanes::Mask active = Lanes::mask_of(column[i * K]);
      for (int64_t k = 0; k < P; ++k) acc[k] = acc[k].add_where(active, rx[i * P + k]);
    }
    const int64_t count = m - j < L ? m - j : L;
    const Lanes c = Lanes::load(a + j, count) * scale_c;
    for (int64_t k = 0; k < P; ++k) (acc[k] * c).store(G + k * m + j, count);
  }
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
    for (int64_t i = 0; i < n; ++i) f[i] = Lanes::load(lanes + i * L).sum();
    // L = (scale / 2) sum_i (f_i - y_i)^2, the points in lanes as the neurons above.
    Lanes acc = Lanes::zero();
    for (int64_t i0 = 0; i0 < n; i0 += L) {
      const int64_t count = n - i0 < L ? n - i0 : L;
      const Lanes e = Lanes::load(f + i0, count) - Lanes::load(ys + i0, count);
      acc = count < L ? Lanes::first_from(acc, acc + e * e, count) : acc + e * e;
    }
    loss[s] = (scale * 0.5) * acc.sum();
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
