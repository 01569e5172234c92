// A group of 4 lanes of doubles as one AVX2 register; the operations of lanes_avx512.h lane by
// lane (streamed_step.cpp runs the 16 lanes as 4 groups, which leaves every sum unchanged).
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace minnorm {

struct Lanes {
  static constexpr int64_t kWidth = 4;
  __m256d v;

  struct Mask {
    __m256d on;  // all ones in the lanes an add_where adds to
  };

  static __m256d first(int64_t count) {  // all ones in the lanes below `count`
    return _mm256_castsi256_pd(
        _mm256_cmpgt_epi64(_mm256_set1_epi64x(count), _mm256_setr_epi64x(0, 1, 2, 3)));
  }

  static Lanes zero() { return {_mm256_setzero_pd()}; }
  static Lanes fill(double x) { return {_mm256_set1_pd(x)}; }
  static Lanes load(const double* p) { return {_mm256_loadu_pd(p)}; }
  // The first `count` lanes from p, the others 0 (masked-off lanes are not read).
  static Lanes load(const double* p, int64_t count) {
    return {_mm256_maskload_pd(p, _mm256_castpd_si256(first(count)))};
  }
  void store(double* p) const { _mm256_storeu_pd(p, v); }
  void store(double* p, int64_t count) const {
    _mm256_maskstore_pd(p, _mm256_castpd_si256(first(count)), v);
  }
  friend Lanes operator+(const Lanes& a, const Lanes& b) { return {_mm256_add_pd(a.v, b.v)}; }
  friend Lanes operator*(const Lanes& a, const Lanes& b) { return {_mm256_mul_pd(a.v, b.v)}; }
  static Lanes first_from(const Lanes& a, const Lanes& b, int64_t count) {
    return {_mm256_blendv_pd(a.v, b.v, first(count))};
  }
  // MAXPD(0, z), as lanes_avx512.h.
  static Lanes relu(const Lanes& z) { return {_mm256_max_pd(_mm256_setzero_pd(), z.v)}; }
  unsigned positive_bits() const {
    return static_cast<unsigned>(
        _mm256_movemask_pd(_mm256_cmp_pd(v, _mm256_setzero_pd(), _CMP_GT_OQ)));
  }
  static Mask mask_of(unsigned bits) {
    const __m256i bit = _mm256_setr_epi64x(1, 2, 4, 8);
    const __m256i all = _mm256_set1_epi64x(bits);
    return {_mm256_castsi256_pd(_mm256_cmpeq_epi64(_mm256_and_si256(all, bit), bit))};
  }
  // lane + x where the mask is set (computed in every lane, kept in those): what AVX-512's
  // masked add yields.
  Lanes add_where(const Mask& mask, double x) const {
    return {_mm256_blendv_pd(v, _mm256_add_pd(v, _mm256_set1_pd(x)), mask.on)};
  }
};

}  // namespace minnorm
