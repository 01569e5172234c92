// 16 lanes of doubles as four AVX2 registers; the operations of lanes_avx512.h lane by lane.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace minnorm {

struct Lanes {
  __m256d q[4];  // lanes 0-3, 4-7, 8-11, 12-15

  struct Mask {
    __m256d q[4];  // all ones in the lanes an add_where adds to
  };

  // All ones in the lanes of part i below `count`.
  static __m256d first(int i, int64_t count) {
    const __m256i index = _mm256_setr_epi64x(4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3);
    return _mm256_castsi256_pd(_mm256_cmpgt_epi64(_mm256_set1_epi64x(count), index));
  }

  static Lanes zero() {
    const __m256d z = _mm256_setzero_pd();
    return {{z, z, z, z}};
  }
  static Lanes fill(double v) {
    const __m256d b = _mm256_set1_pd(v);
    return {{b, b, b, b}};
  }
  static Lanes load(const double* p) {
    return {{_mm256_loadu_pd(p), _mm256_loadu_pd(p + 4), _mm256_loadu_pd(p + 8),
             _mm256_loadu_pd(p + 12)}};
  }
  // The first `count` lanes from p, the others 0 (masked-off lanes are not read).
  static Lanes load(const double* p, int64_t count) {
    Lanes r;
    for (int i = 0; i < 4; ++i)
      r.q[i] = _mm256_maskload_pd(p + 4 * i, _mm256_castpd_si256(first(i, count)));
    return r;
  }
  void store(double* p) const {
    for (int i = 0; i < 4; ++i) _mm256_storeu_pd(p + 4 * i, q[i]);
  }
  void store(double* p, int64_t count) const {
    for (int i = 0; i < 4; ++i)
      _mm256_maskstore_pd(p + 4 * i, _mm256_castpd_si256(first(i, count)), q[i]);
  }
  friend Lanes operator+(const Lanes& u, const Lanes& v) {
    Lanes r;
    for (int i = 0; i < 4; ++i) r.q[i] = _mm256_add_pd(u.q[i], v.q[i]);
    return r;
  }
  friend Lanes operator-(const Lanes& u, const Lanes& v) {
    Lanes r;
    for (int i = 0; i < 4; ++i) r.q[i] = _mm256_sub_pd(u.q[i], v.q[i]);
    return r;
  }
  friend Lanes operator*(const Lanes& u, const Lanes& v) {
    Lanes r;
    for (int i = 0; i < 4; ++i) r.q[i] = _mm256_mul_pd(u.q[i], v.q[i]);
    return r;
  }
  static Lanes first_from(const Lanes& a, const Lanes& b, int64_t count) {
    Lanes r;
    for (int i = 0; i < 4; ++i) r.q[i] = _mm256_blendv_pd(a.q[i], b.q[i], first(i, count));
    return r;
  }
  // MAXPD(0, z), as lanes_avx512.h.
  static Lanes relu(const Lanes& z) {
    Lanes r;
    for (int i = 0; i < 4; ++i) r.q[i] = _mm256_max_pd(_mm256_setzero_pd(), z.q[i]);
    return r;
  }
  uint16_t positive_bits() const {
    unsigned bits = 0;
    for (int i = 0; i < 4; ++i)
      bits |= static_cast<unsigned>(
                  _mm256_movemask_pd(_mm256_cmp_pd(q[i], _mm256_setzero_pd(), _CMP_GT_OQ)))
              << (4 * i);
    return static_cast<uint16_t>(bits);
  }
  static Mask mask_of(uint16_t bits) {
    Mask mask;
    const __m256i all = _mm256_set1_epi64x(bits);
    for (int i = 0; i < 4; ++i) {
      const __m256i bit = _mm256_setr_epi64x(int64_t{1} << (4 * i), int64_t{2} << (4 * i),
                                             int64_t{4} << (4 * i), int64_t{8} << (4 * i));
      mask.q[i] = _mm256_castsi256_pd(_mm256_cmpeq_epi64(_mm256_and_si256(all, bit), bit));
    }
    return mask;
  }
  // lane + v where the mask is set (the sum is computed in every lane and kept in those only,
  // which is what AVX-512's masked add yields).
  Lanes add_where(const Mask& mask, double v) const {
    const __m256d b = _mm256_set1_pd(v);
    Lanes r;
    for (int i = 0; i < 4; ++i) r.q[i] = _mm256_blendv_pd(q[i], _mm256_add_pd(q[i], b), mask.q[i]);
    return r;
  }
  // The order of lanes_avx512.h: v_j = lane j + lane j + 8, then 0 + (((v0 + v1) + ...) + v7).
  double sum() const {
    alignas(32) double v[8];
    _mm256_store_pd(v, _mm256_add_pd(q[0], q[2]));
    _mm256_store_pd(v + 4, _mm256_add_pd(q[1], q[3]));
    double total = v[0];
    for (int j = 1; j < 8; ++j) total = total + v[j];
    return 0.0 + total;
  }
};

}  // namespace minnorm
