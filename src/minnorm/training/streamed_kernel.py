"""The streamed gradient as one hand-written C++ kernel that keeps the activation pattern as bits.

``gd_step.streamed_gradient``, compiled by inductor, computes Z = Xt W^T twice per step: once for
f in the forward loop and again, for the pattern 1{Z > 0}, in the backward loop, because inductor
can only keep a pattern as an (n, m) buffer of bytes or doubles, which made the step memory-bound
(5-13x slower, BENCHMARKS.md). With AVX-512 the forward loop can store the pattern of 16 neurons at
one point as 16 bits (n m / 8 bytes: 125 KB at n = 100, m = 10^4, in the L2 cache), and the
backward loop then adds r_i x~_i only to the neurons whose bit is set, with masked adds, instead
of recomputing p products per neuron and point.

The kernel repeats inductor's loops operation for operation, so that every run's iterates are
those of the compiled ``streamed_gradient`` bit for bit
(``tests/training/test_streamed_kernel.py``):

- f_i, for the points in pairs (2q, 2q+1) and the last one alone when n is odd: 16 lanes of
  accumulators, lane l summing c_r relu(z_ir) over the neurons r = l (mod 16) in order, with
  z_ir = ((x_i0 w_r0 + x_i1 w_r1) + x_i2 w_r2) + ... (no fused multiply-add), c_r = a_r m^-1/2, the
  last m mod 16 neurons added under a lane mask, then ``at::vec::vec_reduce_all`` over the lanes;
- dL/dw_rk = c_r sum_i [z_ir > 0] (r_i x_ik), the sum over i in order, r_i = scale (f_i - y_i);
  inductor adds (0 x_ik) for the neurons whose pattern bit is 0, which leaves every sum unchanged;
- L = (scale / 2) sum_i (f_i - y_i)^2 over 16 lanes as above.

It is built by inductor's own C++ tool chain (the flags of its kernels, ``at::vec`` of the
instruction set inductor picked) into the project's compile cache, once per machine type and p.
``FusedGradient`` runs it where inductor picks AVX-512 and torch uses one thread (the training
jobs' setting: ``usable``); elsewhere it keeps the compiled ``streamed_gradient``, whose sums over m
inductor splits between threads when there are several.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

# Vector lanes of inductor's loops over m for float64 on AVX-512: VectorizedN<double, 2>.
LANES = 16
# Chunks of LANES neurons per block of the forward loop (the kernel's K): 256 neurons.
BLOCK_CHUNKS = 16

_SOURCE = r"""
#include <torch/csrc/inductor/cpp_prefix.h>
#include <immintrin.h>
#if !defined(CPU_CAPABILITY_AVX512)
#error "the streamed kernel needs AVX-512"
#endif

namespace {
constexpr int64_t P = @P@;  // weights per neuron: d, +1 with a bias
constexpr int64_t L = 16;  // lanes per chunk of neurons (inductor's VectorizedN<double, 2>)
// Chunks per block: the forward loop adds a block of K L neurons (K L P doubles of W, 12 KiB at
// P = 6) to the lane sums of every point before the next block, so W is read from the L1 cache
// at any width, and every lane still adds its neurons in the order of the unblocked loop.
constexpr int64_t K = @K@;
using Vec = at::vec::Vectorized<double>;
using V = at::vec::VectorizedN<double, 2>;

inline double lane_sum(const V& acc) {
  double total = 0;
  total = total + at::vec::vec_reduce_all<double, 2>([](Vec& u, Vec& v) { return u + v; }, acc);
  return total;
}

inline uint16_t positive_bits(const V& z) {
  const __m512d zero = _mm512_setzero_pd();
  const unsigned lo = _mm512_cmp_pd_mask(z[0], zero, _CMP_GT_OQ);
  const unsigned hi = _mm512_cmp_pd_mask(z[1], zero, _CMP_GT_OQ);
  return static_cast<uint16_t>(lo | (hi << 8));
}

// Adds to the lane sums of NP consecutive points i0, ... (a pair, or the last point alone) the
// neurons of block jb (chunks jb K .. jb K + K - 1), and writes those points' pattern bits.
template <int NP>
void forward(const double* Wt, const double* X, const double* a, double inv_sqrt_m, int64_t n, int64_t m,
             int64_t jb, int64_t i0, double* lanes, uint16_t* bits) {
  double x[NP][P];
  for (int q = 0; q < NP; ++q)
    for (int64_t k = 0; k < P; ++k) x[q][k] = X[(i0 + q) * P + k];
  V acc[NP];
  for (int q = 0; q < NP; ++q) acc[q] = V::loadu(lanes + (i0 + q) * L);
  const V scale_c(inv_sqrt_m);
  uint16_t* block_bits = bits + jb * n * K;
  auto chunk = [&](int64_t c, int64_t count) {  // chunk c of the block (count < L: the last neurons)
    const int64_t j = (jb * K + c) * L;
    V w[P];
    for (int64_t k = 0; k < P; ++k) w[k] = count < L ? V::loadu(Wt + k * m + j, count) : V::loadu(Wt + k * m + j);
    const V c_r = (count < L ? V::loadu(a + j, count) : V::loadu(a + j)) * scale_c;
    for (int q = 0; q < NP; ++q) {
      V z = V(x[q][0]) * w[0];
      for (int64_t k = 1; k < P; ++k) z = z + V(x[q][k]) * w[k];
      block_bits[(i0 + q) * K + c] = positive_bits(z);
      const V term = at::vec::clamp_min(z, V(0)) * c_r;
      acc[q] = count < L ? V::set(acc[q], acc[q] + term, count) : acc[q] + term;
    }
  };
  const int64_t j0 = jb * K * L, in_block = std::min(K * L, m - j0);
  for (int64_t c = 0; c < in_block / L; ++c) chunk(c, L);
  if (in_block % L) chunk(in_block / L, in_block % L);
  for (int q = 0; q < NP; ++q) acc[q].store(lanes + (i0 + q) * L);
}

// dL/dW (as Wt: P x m) of one run from its pattern bits and rx[i][k] = r_i x~_ik.
void backward(const uint16_t* bits, const double* rx, const double* a, double inv_sqrt_m, int64_t n,
              int64_t m, double* G) {
  const V scale_c(inv_sqrt_m);
  for (int64_t j = 0; j < m; j += L) {
    __m512d lo[P], hi[P];
    for (int64_t k = 0; k < P; ++k) lo[k] = hi[k] = _mm512_setzero_pd();
    const int64_t chunk = j / L;
    const uint16_t* column = bits + (chunk / K) * n * K + chunk % K;
    for (int64_t i = 0; i < n; ++i) {
      const unsigned b = column[i * K];
      const __mmask8 b_lo = static_cast<__mmask8>(b & 0xff), b_hi = static_cast<__mmask8>(b >> 8);
      for (int64_t k = 0; k < P; ++k) {
        const __m512d v = _mm512_set1_pd(rx[i * P + k]);
        lo[k] = _mm512_mask_add_pd(lo[k], b_lo, lo[k], v);
        hi[k] = _mm512_mask_add_pd(hi[k], b_hi, hi[k], v);
      }
    }
    const int64_t count = m - j < L ? m - j : L;
    const V c = V::loadu(a + j, count) * scale_c;
    for (int64_t k = 0; k < P; ++k) (V(Vec(lo[k]), Vec(hi[k])) * c).store(G + k * m + j, count);
  }
}
}  // namespace

// Wt: (S, P, m), X: (n, P), y: (n,) (y_stride 0) or (S, n) (y_stride n), a: (S, m), scale and
// inv_sqrt_m: 0-d; out: G (S, P, m), loss (S,); scratch: f (n,), lanes (n, L), rx (n, P), bits
// (ceil(m / (K L)), n, K): the pattern of chunk c at point i in bits[c / K][i][c % K].
extern "C" void kernel(const double* Wt, const double* X, const double* y, const double* a,
                       const double* scale_ptr, const double* inv_sqrt_m_ptr, double* G, double* loss,
                       double* f, double* lanes, double* rx, uint16_t* bits, int64_t S, int64_t n, int64_t m,
                       int64_t y_stride) {
  const double scale = *scale_ptr, inv_sqrt_m = *inv_sqrt_m_ptr;
  for (int64_t s = 0; s < S; ++s) {
    const double* Ws = Wt + s * P * m;
    const double* as = a + s * m;
    const double* ys = y + s * y_stride;
    std::fill(lanes, lanes + n * L, 0.0);
    for (int64_t jb = 0; jb * K * L < m; ++jb) {
      int64_t i = 0;
      for (; i + 1 < n; i += 2) forward<2>(Ws, X, as, inv_sqrt_m, n, m, jb, i, lanes, bits);
      if (i < n) forward<1>(Ws, X, as, inv_sqrt_m, n, m, jb, i, lanes, bits);
    }
    for (int64_t i = 0; i < n; ++i) f[i] = lane_sum(V::loadu(lanes + i * L));
    V acc(0);
    for (int64_t i0 = 0; i0 < n; i0 += L) {
      const int64_t count = n - i0 < L ? n - i0 : L;
      const V e = V::loadu(f + i0, count) - V::loadu(ys + i0, count);
      acc = count < L ? V::set(acc, acc + e * e, count) : acc + e * e;
    }
    loss[s] = (scale * 0.5) * lane_sum(acc);
    for (int64_t i1 = 0; i1 < n; ++i1) {
      const double r = (f[i1] - ys[i1]) * scale;
      for (int64_t k = 0; k < P; ++k) rx[i1 * P + k] = r * X[i1 * P + k];
    }
    backward(bits, rx, as, inv_sqrt_m, n, m, G + s * P * m);
  }
}
"""

_ARGTYPES = [
    "const double*", "const double*", "const double*", "const double*", "const double*", "const double*",
    "double*", "double*", "double*", "double*", "double*", "uint16_t*", "int64_t", "int64_t", "int64_t", "int64_t",
]  # fmt: skip


def available() -> bool:
    """Whether inductor vectorises this machine's float64 loops with AVX-512 (the kernel's
    premise)."""
    try:
        from torch._inductor.cpu_vec_isa import VecAVX512, pick_vec_isa

        return isinstance(pick_vec_isa(), VecAVX512)
    except Exception:  # no compiler, no inductor: the compiled formula decides what to do
        return False


def usable() -> bool:
    """Whether ``FusedGradient`` runs the kernel in this process: AVX-512 (``available``) and one
    torch thread, as in a training job (the kernel runs on one thread; with more, inductor splits
    its sums over m between threads, and the compiled formula is the faster one).
    """
    return torch.get_num_threads() == 1 and available()


@functools.cache
def _load(p: int) -> Callable[..., None]:
    """The compiled kernel for p weights per neuron (built once per machine type into the compile
    cache)."""
    from torch._inductor.codecache import CppPythonBindingsCodeCache

    source = _SOURCE.replace("@P@", str(p)).replace("@K@", str(BLOCK_CHUNKS))
    return CppPythonBindingsCodeCache.load_pybinding(_ARGTYPES, source)


class StreamedKernel:
    """``streamed_gradient`` (unblocked, float64, CPU) as the C++ kernel, for one fixed full batch.

    Called like the compiled formula: (Wt: (p, m) or (S, p, m) contiguous, Xt: (n, p) contiguous,
    y: (n,) or (S, n), a: (m,) or (S, m), scale: 0-d) -> (dL/dW: (..., m, p) as a transposed view of
    a
    (..., p, m) tensor, L: (...)). Building it compiles the kernel on the first use on a machine
    type (a few seconds; then a file in the compile cache) and raises if that fails.
    """

    def __init__(self, p: int) -> None:
        self._kernel = _load(p)
        self._scratch: dict[tuple[int, int], tuple[torch.Tensor, ...]] = {}

    def __call__(
        self,
        Wt: torch.Tensor,
        Xt: torch.Tensor,
        y: torch.Tensor,
        a: torch.Tensor,
        scale: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        p, m = Wt.shape[-2:]
        n = Xt.shape[0]
        batch = Wt.shape[:-2]
        for name, t in (("Wt", Wt), ("Xt", Xt), ("y", y), ("a", a), ("scale", scale)):
            if t.dtype != torch.float64 or t.device.type != "cpu" or not t.is_contiguous():
                raise ValueError(
                    f"the streamed kernel takes contiguous float64 CPU tensors; {name} is not"
                )
        if (
            Xt.shape != (n, p)
            or y.shape not in ((n,), (*batch, n))
            or a.shape != (*batch, m)
            or len(batch) > 1
        ):
            shapes = ", ".join(
                f"{name} {tuple(t.shape)}"
                for name, t in (("Wt", Wt), ("Xt", Xt), ("y", y), ("a", a))
            )
            raise ValueError(f"shapes do not match: {shapes}")
        S = batch[0] if batch else 1
        if (n, m) not in self._scratch:  # buffers the kernel overwrites, made once per shape
            blocks = -(-m // (LANES * BLOCK_CHUNKS))
            self._scratch[(n, m)] = (
                torch.tensor(m**-0.5, dtype=torch.float64),
                torch.empty(n, dtype=torch.float64),
                torch.empty(n, LANES, dtype=torch.float64),
                torch.empty(n, p, dtype=torch.float64),
                torch.empty(blocks, n, BLOCK_CHUNKS, dtype=torch.int16),
            )
        inv_sqrt_m, f, lanes, rx, bits = self._scratch[(n, m)]
        G = torch.empty_like(Wt)
        loss = torch.empty(batch, dtype=torch.float64)
        self._kernel(
            Wt,
            Xt,
            y,
            a,
            scale,
            inv_sqrt_m,
            G,
            loss,
            f,
            lanes,
            rx,
            bits,
            S,
            n,
            m,
            n if y.ndim == 2 else 0,
        )
        return G.mT, loss
