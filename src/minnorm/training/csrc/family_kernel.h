// One full-batch GD step's gradients and loss for a two-layer network of the issue-29 families
// (softplus, tanh, erf, leaky_relu, relu), its output layer fixed or trained, with AVX-512
// (minnorm.training.family_kernel builds this file on CPUs whose torch capability is AVX-512).
#pragma once

#include <cstdint>

namespace minnorm {

// The activations the kernel evaluates (minnorm.training.family_kernel.ACTIVATION_CODES);
// kLeaky is s(z) = z for z > 0, leak z otherwise (relu: leak = 0).
enum class Family : int64_t { kSoftplus = 0, kTanh = 1, kErf = 2, kLeaky = 3 };

// Neurons per block of the forward loop: 256 (12 KiB of W at p = 6, read from L1 by every point).
constexpr int64_t kFamilyBlock = 256;

// dL/dW, dL/da (when `trained`) and L of one run with p weights per neuron (1 <= p <=
// MINNORM_MAX_P; returns false for another p or activation code, touching nothing).
//   Wt: (p, m) row-major (W transposed), X: (n, p) augmented inputs, y: (n,), a: (m,);
//   leak: kLeaky's slope for z <= 0 (unused otherwise); scale: d loss / d f_i over (f_i - y_i);
//   inv_sqrt_m: m^-1/2.
//   Out: G (p, m), the gradient laid out as Wt; Ga (m,) when trained (else unused); loss (1,).
//   Scratch, overwritten: r (n,), lanes (n, 8), D and, when trained, S: (ceil(m / kFamilyBlock),
//   n, kFamilyBlock) each, s'(z_ir) and s(z_ir) of neuron r = b kFamilyBlock + l at [b][i][l];
//   for kLeaky, D holds the pattern as bytes instead (ceil(m / kFamilyBlock) n kFamilyBlock / 8
//   of them) and S is unused.
bool family_step(int64_t activation, bool trained, int64_t p, const double* Wt, const double* X,
                 const double* y, const double* a, double leak, double scale, double inv_sqrt_m,
                 double* G, double* Ga, double* loss, double* r, double* lanes, double* D,
                 double* S, int64_t n, int64_t m);

}  // namespace minnorm
