// A group of 2 lanes of doubles in plain C++ (any CPU); the operations of lanes_avx512.h lane by
// lane (streamed_step.cpp runs the 16 lanes as 8 groups, which leaves every sum unchanged).
// Selections between two doubles are made on their bits, not with a branch: on pattern bits and
// signs that are random, a branch is mispredicted about half the time.
#pragma once

#include <bit>
#include <cstdint>

namespace minnorm {

struct Lanes {
  static constexpr int64_t kWidth = 2;
  double v[kWidth];

  struct Mask {
    uint64_t on[kWidth];  // all ones in the lanes an add_where adds to, else 0
  };

  static uint64_t all_ones_if(bool c) { return uint64_t{0} - static_cast<uint64_t>(c); }
  // a where keep is all ones, b where it is 0, bit for bit.
  static double select(uint64_t keep, double a, double b) {
    return std::bit_cast<double>((std::bit_cast<uint64_t>(a) & keep) |
                                 (std::bit_cast<uint64_t>(b) & ~keep));
  }

  static Lanes zero() { return fill(0.0); }
  static Lanes fill(double x) { return {{x, x}}; }
  static Lanes load(const double* p) { return {{p[0], p[1]}}; }
  // The first `count` lanes from p, the others 0 (not read).
  static Lanes load(const double* p, int64_t count) {
    return {{count > 0 ? p[0] : 0.0, count > 1 ? p[1] : 0.0}};
  }
  void store(double* p) const {
    p[0] = v[0];
    p[1] = v[1];
  }
  void store(double* p, int64_t count) const {
    if (count > 0) p[0] = v[0];
    if (count > 1) p[1] = v[1];
  }
  friend Lanes operator+(const Lanes& a, const Lanes& b) {
    return {{a.v[0] + b.v[0], a.v[1] + b.v[1]}};
  }
  friend Lanes operator*(const Lanes& a, const Lanes& b) {
    return {{a.v[0] * b.v[0], a.v[1] * b.v[1]}};
  }
  // Lanes below `count` from b, the others from a (the last neurons only).
  static Lanes first_from(const Lanes& a, const Lanes& b, int64_t count) {
    return {{count > 0 ? b.v[0] : a.v[0], count > 1 ? b.v[1] : a.v[1]}};
  }
  // MAXPD(0, z) = 0 > z ? 0 : z: z where z is NaN or a zero of either sign, as lanes_avx512.h.
  static double relu(double z) { return select(all_ones_if(0.0 > z), 0.0, z); }
  static Lanes relu(const Lanes& z) { return {{relu(z.v[0]), relu(z.v[1])}}; }
  unsigned positive_bits() const {
    return static_cast<unsigned>(v[0] > 0.0) | static_cast<unsigned>(v[1] > 0.0) << 1;
  }
  static Mask mask_of(unsigned bits) { return {{all_ones_if(bits & 1u), all_ones_if(bits & 2u)}}; }
  // lane + x where the mask is set (computed in both lanes, kept where set).
  Lanes add_where(const Mask& mask, double x) const {
    return {{select(mask.on[0], v[0] + x, v[0]), select(mask.on[1], v[1] + x, v[1])}};
  }
};

}  // namespace minnorm
