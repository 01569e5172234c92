// A group of 16 lanes of doubles as two AVX-512 registers: the whole 16 lanes of
// streamed_step.cpp at once, as in inductor's AVX-512 loops.
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace minnorm {

struct Lanes {
  static constexpr int64_t kWidth = 16;
  __m512d lo, hi;  // lanes 0-7, 8-15

  // Which lanes an add_where adds to.
  struct Mask {
    __mmask8 lo, hi;
  };

  static __mmask8 first(int64_t count) {  // the lowest `count` of 8 lanes
    return count <= 0 ? 0 : count >= 8 ? 0xff : static_cast<__mmask8>((1u << count) - 1);
  }

  static Lanes zero() { return {_mm512_setzero_pd(), _mm512_setzero_pd()}; }
  static Lanes fill(double v) { return {_mm512_set1_pd(v), _mm512_set1_pd(v)}; }
  static Lanes load(const double* p) { return {_mm512_loadu_pd(p), _mm512_loadu_pd(p + 8)}; }
  // The first `count` lanes from p, the others 0 (masked-off lanes are not read).
  static Lanes load(const double* p, int64_t count) {
    return {_mm512_maskz_loadu_pd(first(count), p), _mm512_maskz_loadu_pd(first(count - 8), p + 8)};
  }
  void store(double* p) const {
    _mm512_storeu_pd(p, lo);
    _mm512_storeu_pd(p + 8, hi);
  }
  void store(double* p, int64_t count) const {
    _mm512_mask_storeu_pd(p, first(count), lo);
    _mm512_mask_storeu_pd(p + 8, first(count - 8), hi);
  }
  friend Lanes operator+(const Lanes& u, const Lanes& v) {
    return {_mm512_add_pd(u.lo, v.lo), _mm512_add_pd(u.hi, v.hi)};
  }
  friend Lanes operator*(const Lanes& u, const Lanes& v) {
    return {_mm512_mul_pd(u.lo, v.lo), _mm512_mul_pd(u.hi, v.hi)};
  }
  // Lanes below `count` from b, the others from a.
  static Lanes first_from(const Lanes& a, const Lanes& b, int64_t count) {
    return {_mm512_mask_mov_pd(a.lo, first(count), b.lo),
            _mm512_mask_mov_pd(a.hi, first(count - 8), b.hi)};
  }
  // max(0, z) as MAXPD(0, z): z where z is NaN or a zero of either sign (at::vec::clamp_min).
  static Lanes relu(const Lanes& z) {
    const __m512d zero = _mm512_setzero_pd();
    return {_mm512_max_pd(zero, z.lo), _mm512_max_pd(zero, z.hi)};
  }
  // Bit l set where lane l is > 0 (ordered: NaN gives 0).
  unsigned positive_bits() const {
    const __m512d zero = _mm512_setzero_pd();
    const unsigned l = _mm512_cmp_pd_mask(lo, zero, _CMP_GT_OQ);
    const unsigned h = _mm512_cmp_pd_mask(hi, zero, _CMP_GT_OQ);
    return l | (h << 8);
  }
  // The lanes whose bit is set in the lowest kWidth bits.
  static Mask mask_of(unsigned bits) {
    return {static_cast<__mmask8>(bits & 0xff), static_cast<__mmask8>((bits >> 8) & 0xff)};
  }
  // v added to the lanes of the mask; the others unchanged.
  Lanes add_where(const Mask& mask, double v) const {
    const __m512d b = _mm512_set1_pd(v);
    return {_mm512_mask_add_pd(lo, mask.lo, lo, b), _mm512_mask_add_pd(hi, mask.hi, hi, b)};
  }
};

}  // namespace minnorm
