// One full-batch GD step's gradient and loss for the two-layer ReLU network, streamed over the
// neurons with the activation pattern kept as bits (minnorm.training.streamed_kernel builds this
// file once per instruction set: lanes_avx512.h, lanes_avx2.h or lanes_portable.h).
#pragma once

#include <cstdint>

namespace minnorm {

// Lanes of every sum over the neurons: neuron r is added into lane r mod kLanes, as in the loops
// inductor generates for the compiled streamed formula with AVX-512 (two vectors of 8 doubles).
constexpr int64_t kLanes = 16;
// Chunks of kLanes neurons per block of the forward loop: 256 neurons (12 KiB of W at p = 6).
constexpr int64_t kBlockChunks = 16;

// dL/dW and L of S runs with p weights per neuron (1 <= p <= MINNORM_MAX_P; returns false for
// another p, touching nothing).
//   Wt: (S, p, m) row-major (W transposed), X: (n, p) augmented inputs, y: (n,) when y_stride is
//   0, (S, n) when it is n, a: (S, m); scale: d loss / d f_i over (f_i - y_i); inv_sqrt_m: m^-1/2.
//   Out: G (S, p, m), the gradient laid out as Wt; loss (S,).
//   Scratch, overwritten: f (n,), lanes (n, kLanes), rx (n, p),
//   bits (ceil(m / (kBlockChunks kLanes)), n, kBlockChunks): chunk c's pattern at point i in
//   bits[c / kBlockChunks][i][c % kBlockChunks], bit l for neuron c kLanes + l.
bool streamed_step(int64_t p, const double* Wt, const double* X, const double* y, const double* a,
                   double scale, double inv_sqrt_m, double* G, double* loss, double* f,
                   double* lanes, double* rx, uint16_t* bits, int64_t S, int64_t n, int64_t m,
                   int64_t y_stride);

}  // namespace minnorm
