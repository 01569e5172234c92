// The GD step of family_kernel.h with AVX-512: 8 neurons per vector, fused multiply-adds, and the
// exponential, logarithm and error function of SLEEF, the vector math library inside torch
// (libtorch_cpu exports its AVX-512 functions for the code inductor generates; u10: within
// 1.0 ulp).
//
// Two passes per step, as every full-batch step needs (r depends on all neurons):
//   forward:  z_ir = x~_i . w_r, s(z_ir) and s'(z_ir) (softplus and tanh: from one shared
//             exponential); f_i = sum_r c_r s(z_ir) with c_r = a_r m^-1/2; s' (and s when a is
//             trained) kept in D (and S);
//   backward: dL/dw_rk = c_r sum_i (r_i s'(z_ir)) x~_ik, dL/da_r = m^-1/2 sum_i r_i s(z_ir),
//             r_i = scale (f_i - y_i), read from D and S instead of evaluating s and s' again.
// Keeping s' costs 8 bytes per point and neuron written and read once per step (8 MB at
// n = 100, m = 10^4): cheaper than a second exponential, which costs more than relu's whole
// step per point and neuron (BENCHMARKS.md). leaky_relu and relu keep a bit per point and
// neuron instead (forward_leaky below).
#include "family_kernel.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <utility>

#ifndef MINNORM_MAX_P
#error "build with -DMINNORM_MAX_P=<largest p> (minnorm.training.gradient_formulas.STREAMED_MAX_P)"
#endif

extern "C" {
// SLEEF's AVX-512 double functions as libtorch_cpu exports them (sleef.h is not installed).
__m512d Sleef_expd8_u10(__m512d);
__m512d Sleef_logd8_u10(__m512d);
__m512d Sleef_erfd8_u10(__m512d);
}

namespace minnorm {
namespace {

constexpr int64_t V = 8;  // doubles per vector
constexpr int64_t B = kFamilyBlock;

inline __mmask8 first(int64_t count) {  // the lowest `count` of 8 lanes
  return count <= 0 ? 0 : count >= V ? 0xff : static_cast<__mmask8>((1u << count) - 1);
}

inline __m512d abs_pd(__m512d z) { return _mm512_abs_pd(z); }

// z with the sign of `sign` (|z| assumed: z >= 0 or NaN).
inline __m512d with_sign(__m512d z, __m512d sign) {
  const __m512i bit = _mm512_set1_epi64(static_cast<int64_t>(0x8000000000000000ULL));
  const __m512i s = _mm512_and_si512(_mm512_castpd_si512(sign), bit);
  return _mm512_castsi512_pd(_mm512_or_si512(_mm512_castpd_si512(z), s));
}

// s(z) and s'(z) of 8 preactivations (softplus, tanh, erf).
template <Family A>
inline void activate(__m512d z, __m512d& s, __m512d& d) {
  const __m512d one = _mm512_set1_pd(1.0);
  if constexpr (A == Family::kSoftplus) {
    // log(1 + e^z) = max(z, 0) + log1p(e), e = e^-|z|; log1p(e) = log(u) + (e - (u - 1)) / u
    // with u = 1 + e rounded (the correction restores what rounding u dropped of e);
    // s'(z) = sigmoid(z) = 1 / u for z > 0, e / u otherwise.
    const __m512d e = Sleef_expd8_u10(_mm512_sub_pd(_mm512_setzero_pd(), abs_pd(z)));
    const __m512d u = _mm512_add_pd(one, e);
    const __m512d q = _mm512_div_pd(one, u);
    const __m512d lost = _mm512_sub_pd(e, _mm512_sub_pd(u, one));
    const __m512d log1p_e = _mm512_fmadd_pd(lost, q, Sleef_logd8_u10(u));
    s = _mm512_add_pd(_mm512_max_pd(z, _mm512_setzero_pd()), log1p_e);
    const __mmask8 positive = _mm512_cmp_pd_mask(z, _mm512_setzero_pd(), _CMP_GT_OQ);
    d = _mm512_mask_blend_pd(positive, _mm512_mul_pd(e, q), q);
  } else if constexpr (A == Family::kTanh) {
    // tanh|z| = (1 - e) / (1 + e) and tanh'(z) = 4 e / (1 + e)^2 with e = e^(-2|z|): no
    // overflow, s' keeps its relative accuracy in the tails; s is accurate to a few units of
    // 1e-16 in absolute terms (all that the sums over neurons and points keep of it).
    const __m512d e = Sleef_expd8_u10(_mm512_mul_pd(_mm512_set1_pd(-2.0), abs_pd(z)));
    const __m512d q = _mm512_div_pd(one, _mm512_add_pd(one, e));
    s = with_sign(_mm512_mul_pd(_mm512_sub_pd(one, e), q), z);
    d = _mm512_mul_pd(_mm512_mul_pd(_mm512_set1_pd(4.0), e), _mm512_mul_pd(q, q));
  } else if constexpr (A == Family::kErf) {
    // erf'(z) = 2 / sqrt(pi) e^(-z^2).
    s = Sleef_erfd8_u10(z);
    const __m512d e = Sleef_expd8_u10(_mm512_sub_pd(_mm512_setzero_pd(), _mm512_mul_pd(z, z)));
    d = _mm512_mul_pd(_mm512_set1_pd(1.1283791670955126), e);
  }
}

// Block jb (neurons jb B .. jb B + B - 1) at the points i0 .. i0 + NP - 1: adds c_r s(z_ir) to
// each point's 8 lane sums (lane l: the neurons r = l mod 8 of the block, in order) and writes
// s'(z_ir) to D (and s(z_ir) to S when TRAINED). Lanes past m hold c_r = 0.
//
// Two loops: the first writes z_ir into D (the point's row of the block, 2 KiB, stays in L1), the
// second reads it back and evaluates the activation. Inside the second nothing but constants
// lives across the SLEEF calls, which (as every call) may overwrite all vector registers: one
// loop doing both spilled and reloaded W, x~ and the sums around every call, at twice the cost.
template <Family A, bool TRAINED, int64_t P, int NP>
void forward(const double* Wt, const double* X, const double* a, double inv_sqrt_m, int64_t n,
             int64_t m, int64_t jb, int64_t i0, double* lanes, double* D, double* S) {
  __m512d x[NP][P];
  for (int q = 0; q < NP; ++q)
    for (int64_t k = 0; k < P; ++k) x[q][k] = _mm512_set1_pd(X[(i0 + q) * P + k]);
  const int64_t j0 = jb * B, in_block = std::min(B, m - j0);
  double* row[NP];
  for (int q = 0; q < NP; ++q) row[q] = D + (jb * n + i0 + q) * B;
  for (int64_t v = 0; v * V < in_block; ++v) {
    const int64_t j = j0 + v * V;
    const __mmask8 live = first(m - j);
    __m512d w[P];
    for (int64_t k = 0; k < P; ++k) w[k] = _mm512_maskz_loadu_pd(live, Wt + k * m + j);
    for (int q = 0; q < NP; ++q) {
      __m512d z = _mm512_mul_pd(x[q][0], w[0]);
      for (int64_t k = 1; k < P; ++k) z = _mm512_fmadd_pd(x[q][k], w[k], z);
      _mm512_storeu_pd(row[q] + v * V, z);
    }
  }
  const __m512d scale_c = _mm512_set1_pd(inv_sqrt_m);
  for (int q = 0; q < NP; ++q) {
    __m512d acc = _mm512_loadu_pd(lanes + (i0 + q) * V);
    for (int64_t v = 0; v * V < in_block; ++v) {
      const int64_t j = j0 + v * V;
      const __m512d c_r = _mm512_mul_pd(_mm512_maskz_loadu_pd(first(m - j), a + j), scale_c);
      __m512d s, d;
      activate<A>(_mm512_loadu_pd(row[q] + v * V), s, d);
      _mm512_storeu_pd(row[q] + v * V, d);
      if constexpr (TRAINED) _mm512_storeu_pd(S + (row[q] - D) + v * V, s);
      acc = _mm512_fmadd_pd(c_r, s, acc);
    }
    _mm512_storeu_pd(lanes + (i0 + q) * V, acc);
  }
}

// Stores dL/dw_rk = c_r acc[k][h] (c_r = a_r m^-1/2) of the 16 neurons j0 + v .. j0 + v + 15 of a
// block holding in_block neurons, those past it left alone, and calls grad_a(h, j, live,
// m^-1/2) for each half h (neurons j .. j + 7 under the mask `live`) to store dL/da there.
template <int64_t P, typename GradA>
inline void store_gradients(const __m512d (&acc)[P][2], const double* a, double inv_sqrt_m,
                            int64_t m, int64_t j0, int64_t v, int64_t in_block, double* G,
                            GradA&& grad_a) {
  const __m512d scale_c = _mm512_set1_pd(inv_sqrt_m);
  for (int h = 0; h < 2; ++h) {
    const int64_t j = j0 + v + h * V;
    const __mmask8 live = first(std::min(m, j0 + in_block) - j);
    if (!live) continue;
    const __m512d c = _mm512_mul_pd(_mm512_maskz_loadu_pd(live, a + j), scale_c);
    for (int64_t k = 0; k < P; ++k)
      _mm512_mask_storeu_pd(G + k * m + j, live, _mm512_mul_pd(acc[k][h], c));
    grad_a(h, j, live, scale_c);
  }
}

// dL/dW (as Wt) and dL/da of the neurons of block jb, 16 at a time, from D, S and r.
template <bool TRAINED, int64_t P>
void backward(const double* X, const double* r, const double* a, double inv_sqrt_m, int64_t n,
              int64_t m, int64_t jb, const double* D, const double* S, double* G, double* Ga) {
  const int64_t j0 = jb * B, in_block = std::min(B, m - j0);
  for (int64_t v = 0; v < in_block; v += 2 * V) {
    __m512d acc[P][2], acc_a[2];
    for (int64_t k = 0; k < P; ++k) acc[k][0] = acc[k][1] = _mm512_setzero_pd();
    acc_a[0] = acc_a[1] = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; ++i) {
      const int64_t at = (jb * n + i) * B + v;
      const __m512d r_i = _mm512_set1_pd(r[i]);
      const __m512d rd0 = _mm512_mul_pd(_mm512_loadu_pd(D + at), r_i);
      const __m512d rd1 = _mm512_mul_pd(_mm512_loadu_pd(D + at + V), r_i);
      for (int64_t k = 0; k < P; ++k) {
        const __m512d x_ik = _mm512_set1_pd(X[i * P + k]);
        acc[k][0] = _mm512_fmadd_pd(rd0, x_ik, acc[k][0]);
        acc[k][1] = _mm512_fmadd_pd(rd1, x_ik, acc[k][1]);
      }
      if constexpr (TRAINED) {
        acc_a[0] = _mm512_fmadd_pd(_mm512_loadu_pd(S + at), r_i, acc_a[0]);
        acc_a[1] = _mm512_fmadd_pd(_mm512_loadu_pd(S + at + V), r_i, acc_a[1]);
      }
    }
    store_gradients<P>(acc, a, inv_sqrt_m, m, j0, v, in_block, G,
                       [&](int h, int64_t j, __mmask8 live, __m512d scale_c) {
                         if constexpr (TRAINED)
                           _mm512_mask_storeu_pd(Ga + j, live, _mm512_mul_pd(acc_a[h], scale_c));
                       });
  }
}

// leaky_relu and relu keep no values: s(z) = s'(z) z, so the forward loop stores only the pattern
// [z_ir > 0] (a byte per 8 neurons: bits[(jb n + i) B / 8 + v], in L2 at n = 100, m = 10^4), and
// dL/da_r = m^-1/2 sum_i r_i s'(z_ir) z_ir = m^-1/2 w_r . sum_i r_i s'(z_ir) x~_i comes from the
// same sums as dL/dw_r (z_ir = w_r . x~_i), with no work per point.
template <int64_t P, int NP>
void forward_leaky(const double* Wt, const double* X, const double* a, double leak,
                   double inv_sqrt_m, int64_t n, int64_t m, int64_t jb, int64_t i0, double* lanes,
                   uint8_t* bits) {
  __m512d x[NP][P], acc[NP];
  for (int q = 0; q < NP; ++q) {
    for (int64_t k = 0; k < P; ++k) x[q][k] = _mm512_set1_pd(X[(i0 + q) * P + k]);
    acc[q] = _mm512_loadu_pd(lanes + (i0 + q) * V);
  }
  const __m512d scale_c = _mm512_set1_pd(inv_sqrt_m), slope = _mm512_set1_pd(leak);
  const int64_t j0 = jb * B, in_block = std::min(B, m - j0);
  for (int64_t v = 0; v * V < in_block; ++v) {
    const int64_t j = j0 + v * V;
    const __mmask8 live = first(m - j);
    __m512d w[P];
    for (int64_t k = 0; k < P; ++k) w[k] = _mm512_maskz_loadu_pd(live, Wt + k * m + j);
    const __m512d c_r = _mm512_mul_pd(_mm512_maskz_loadu_pd(live, a + j), scale_c);
    for (int q = 0; q < NP; ++q) {
      __m512d z = _mm512_mul_pd(x[q][0], w[0]);
      for (int64_t k = 1; k < P; ++k) z = _mm512_fmadd_pd(x[q][k], w[k], z);
      const __mmask8 positive = _mm512_cmp_pd_mask(z, _mm512_setzero_pd(), _CMP_GT_OQ);
      bits[(jb * n + i0 + q) * (B / V) + v] = positive;
      const __m512d s = _mm512_mask_blend_pd(positive, _mm512_mul_pd(slope, z), z);
      acc[q] = _mm512_fmadd_pd(c_r, s, acc[q]);
    }
  }
  for (int q = 0; q < NP; ++q) _mm512_storeu_pd(lanes + (i0 + q) * V, acc[q]);
}

template <bool TRAINED, int64_t P>
void backward_leaky(const double* Wt, const double* X, const double* r, const double* a,
                    double leak, double inv_sqrt_m, int64_t n, int64_t m, int64_t jb,
                    const uint8_t* bits, double* G, double* Ga) {
  const int64_t j0 = jb * B, in_block = std::min(B, m - j0);
  for (int64_t v = 0; v < in_block; v += 2 * V) {
    __m512d acc[P][2];
    for (int64_t k = 0; k < P; ++k) acc[k][0] = acc[k][1] = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* pattern = bits + (jb * n + i) * (B / V) + v / V;
      const __m512d r_i = _mm512_set1_pd(r[i]), leak_r_i = _mm512_set1_pd(leak * r[i]);
      const __m512d rd0 = _mm512_mask_blend_pd(pattern[0], leak_r_i, r_i);
      const __m512d rd1 = _mm512_mask_blend_pd(pattern[1], leak_r_i, r_i);
      for (int64_t k = 0; k < P; ++k) {
        const __m512d x_ik = _mm512_set1_pd(X[i * P + k]);
        acc[k][0] = _mm512_fmadd_pd(rd0, x_ik, acc[k][0]);
        acc[k][1] = _mm512_fmadd_pd(rd1, x_ik, acc[k][1]);
      }
    }
    store_gradients<P>(acc, a, inv_sqrt_m, m, j0, v, in_block, G,
                       [&](int h, int64_t j, __mmask8 live, __m512d scale_c) {
                         if constexpr (TRAINED) {
                           __m512d wg = _mm512_setzero_pd();
                           for (int64_t k = 0; k < P; ++k)
                             wg = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(live, Wt + k * m + j),
                                                  acc[k][h], wg);
                           _mm512_mask_storeu_pd(Ga + j, live, _mm512_mul_pd(wg, scale_c));
                         }
                       });
  }
}

template <Family A, bool TRAINED, int64_t P>
void step(const double* Wt, const double* X, const double* y, const double* a, double leak,
          double scale, double inv_sqrt_m, double* G, double* Ga, double* loss, double* r,
          double* lanes, double* D, double* S, int64_t n, int64_t m) {
  std::fill(lanes, lanes + n * V, 0.0);
  const int64_t blocks = (m + B - 1) / B;
  uint8_t* bits = reinterpret_cast<uint8_t*>(D);
  for (int64_t jb = 0; jb < blocks; ++jb) {
    int64_t i = 0;
    if constexpr (A == Family::kLeaky) {
      for (; i + 1 < n; i += 2)
        forward_leaky<P, 2>(Wt, X, a, leak, inv_sqrt_m, n, m, jb, i, lanes, bits);
      if (i < n) forward_leaky<P, 1>(Wt, X, a, leak, inv_sqrt_m, n, m, jb, i, lanes, bits);
    } else {
      for (; i + 1 < n; i += 2)
        forward<A, TRAINED, P, 2>(Wt, X, a, inv_sqrt_m, n, m, jb, i, lanes, D, S);
      if (i < n) forward<A, TRAINED, P, 1>(Wt, X, a, inv_sqrt_m, n, m, jb, i, lanes, D, S);
    }
  }
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double e = _mm512_reduce_add_pd(_mm512_loadu_pd(lanes + i * V)) - y[i];  // f_i - y_i
    total += e * e;
    r[i] = e * scale;
  }
  loss[0] = 0.5 * scale * total;
  for (int64_t jb = 0; jb < blocks; ++jb) {
    if constexpr (A == Family::kLeaky)
      backward_leaky<TRAINED, P>(Wt, X, r, a, leak, inv_sqrt_m, n, m, jb, bits, G, Ga);
    else
      backward<TRAINED, P>(X, r, a, inv_sqrt_m, n, m, jb, D, S, G, Ga);
  }
}

template <Family A, bool TRAINED, int64_t... Q, typename... Args>
bool step_for(std::integer_sequence<int64_t, Q...>, int64_t p, Args... args) {
  return ((p == Q + 1 ? (step<A, TRAINED, Q + 1>(args...), true) : false) || ...);
}

template <Family A, typename... Args>
bool step_trained(bool trained, int64_t p, Args... args) {
  const auto ps = std::make_integer_sequence<int64_t, MINNORM_MAX_P>{};
  return trained ? step_for<A, true>(ps, p, args...) : step_for<A, false>(ps, p, args...);
}

}  // namespace

bool family_step(int64_t activation, bool trained, int64_t p, const double* Wt, const double* X,
                 const double* y, const double* a, double leak, double scale, double inv_sqrt_m,
                 double* G, double* Ga, double* loss, double* r, double* lanes, double* D,
                 double* S, int64_t n, int64_t m) {
  switch (static_cast<Family>(activation)) {
    case Family::kSoftplus:
      return step_trained<Family::kSoftplus>(trained, p, Wt, X, y, a, leak, scale, inv_sqrt_m, G,
                                             Ga, loss, r, lanes, D, S, n, m);
    case Family::kTanh:
      return step_trained<Family::kTanh>(trained, p, Wt, X, y, a, leak, scale, inv_sqrt_m, G, Ga,
                                         loss, r, lanes, D, S, n, m);
    case Family::kErf:
      return step_trained<Family::kErf>(trained, p, Wt, X, y, a, leak, scale, inv_sqrt_m, G, Ga,
                                        loss, r, lanes, D, S, n, m);
    case Family::kLeaky:
      return step_trained<Family::kLeaky>(trained, p, Wt, X, y, a, leak, scale, inv_sqrt_m, G,
                                          Ga, loss, r, lanes, D, S, n, m);
  }
  return false;
}

}  // namespace minnorm
