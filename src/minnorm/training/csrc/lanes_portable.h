// 16 lanes of doubles in plain C++ (any CPU); the operations of lanes_avx512.h lane by lane.
#pragma once

#include <cstdint>

namespace minnorm {

struct Lanes {
  double v[16];

  struct Mask {
    uint16_t bits;  // bit l: lane l
  };

  static Lanes zero() { return fill(0.0); }
  static Lanes fill(double x) {
    Lanes r;
    for (int l = 0; l < 16; ++l) r.v[l] = x;
    return r;
  }
  static Lanes load(const double* p) { return load(p, 16); }
  // The first `count` lanes from p, the others 0 (not read).
  static Lanes load(const double* p, int64_t count) {
    Lanes r;
    for (int l = 0; l < 16; ++l) r.v[l] = l < count ? p[l] : 0.0;
    return r;
  }
  void store(double* p) const { store(p, 16); }
  void store(double* p, int64_t count) const {
    for (int l = 0; l < 16 && l < count; ++l) p[l] = v[l];
  }
  friend Lanes operator+(const Lanes& u, const Lanes& w) {
    Lanes r;
    for (int l = 0; l < 16; ++l) r.v[l] = u.v[l] + w.v[l];
    return r;
  }
  friend Lanes operator-(const Lanes& u, const Lanes& w) {
    Lanes r;
    for (int l = 0; l < 16; ++l) r.v[l] = u.v[l] - w.v[l];
    return r;
  }
  friend Lanes operator*(const Lanes& u, const Lanes& w) {
    Lanes r;
    for (int l = 0; l < 16; ++l) r.v[l] = u.v[l] * w.v[l];
    return r;
  }
  static Lanes first_from(const Lanes& a, const Lanes& b, int64_t count) {
    Lanes r;
    for (int l = 0; l < 16; ++l) r.v[l] = l < count ? b.v[l] : a.v[l];
    return r;
  }
  // MAXPD(0, z) = 0 > z ? 0 : z: z where z is NaN or a zero of either sign, as lanes_avx512.h.
  static Lanes relu(const Lanes& z) {
    Lanes r;
    for (int l = 0; l < 16; ++l) r.v[l] = 0.0 > z.v[l] ? 0.0 : z.v[l];
    return r;
  }
  uint16_t positive_bits() const {
    unsigned bits = 0;
    for (int l = 0; l < 16; ++l) bits |= static_cast<unsigned>(v[l] > 0.0) << l;
    return static_cast<uint16_t>(bits);
  }
  static Mask mask_of(uint16_t bits) { return {bits}; }
  Lanes add_where(const Mask& mask, double x) const {
    Lanes r;
    for (int l = 0; l < 16; ++l) r.v[l] = (mask.bits >> l) & 1u ? v[l] + x : v[l];
    return r;
  }
  // The order of lanes_avx512.h: v_j = lane j + lane j + 8, then 0 + (((v0 + v1) + ...) + v7).
  double sum() const {
    double total = v[0] + v[8];
    for (int j = 1; j < 8; ++j) total = total + (v[j] + v[j + 8]);
    return 0.0 + total;
  }
};

}  // namespace minnorm
