"""What one evaluation of a vectorised float64 function costs on this CPU, per element: SLEEF's
AVX-512 exp, log, log1p and tanh (u10: within 1 ulp; the functions torch and the family kernel
call) and a division, against relu's whole GD step per point and neuron.

Why: at n = 100, p = 6, m = 10^4, relu's C++ kernel takes about 0.6 ns per point and neuron for
a whole step (forward and backward). Issue 29 asks every other network's step to be within 2x of
it, about 1.2 ns per point and neuron. A smooth activation needs at least one exponential per
point and neuron and step (erf: an erf as well), so the exponential's row is a lower bound on the
step of each with torch's vector math library. (erf is left out: timed this way, SLEEF's erf took
17-22 ns per element on values with full mantissas and 3.5 ns on a grid of multiples of 2^-9,
while the family kernel's whole erf step takes about 7 ns per point and neuron; the loop here does
not show what erf costs inside the step.)

Each function runs over 2048 doubles in L1 (uniform in [lo, hi], the range the step meets),
`--reps` times; the loop adds the results into one register, so the calls are independent and
the time is their throughput. The same process times relu's kernel (n = 100, p = 6, m = 10^4,
median of 5 x 50 steps). AVX-512 CPUs only.

    .venv/bin/python benchmarks/bench_vector_math.py [--reps 20000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from minnorm.training import streamed_kernel
from minnorm.training.compile_cache import extension_folder

SOURCE = r"""
#include <immintrin.h>
#include <torch/extension.h>
#include <chrono>
extern "C" {
__m512d Sleef_expd8_u10(__m512d);
__m512d Sleef_logd8_u10(__m512d);
__m512d Sleef_log1pd8_u10(__m512d);
__m512d Sleef_tanhd8_u10(__m512d);
}
template <class F> double per_element(F f, double lo, double hi, int64_t reps) {
  // Uniform in [lo, hi] from a 64-bit LCG.
  alignas(64) double buf[2048];
  uint64_t state = 88172645463325252ULL;
  for (int i = 0; i < 2048; ++i) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    buf[i] = lo + (hi - lo) * static_cast<double>(state >> 11) * 0x1.0p-53;
  }
  __m512d acc = _mm512_setzero_pd();
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t r = 0; r < reps; ++r)
    for (int i = 0; i < 2048; i += 8) acc = _mm512_add_pd(acc, f(_mm512_load_pd(buf + i)));
  const auto t1 = std::chrono::steady_clock::now();
  volatile double sink = _mm512_reduce_add_pd(acc);
  (void)sink;
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / (reps * 2048.0);
}
std::vector<double> timings(int64_t reps) {
  const __m512d one = _mm512_set1_pd(1.0);
  return {
      per_element([](__m512d x) { return x; }, -3, 3, reps),
      per_element([](__m512d x) { return Sleef_expd8_u10(x); }, -6, 0, reps),
      per_element([](__m512d x) { return Sleef_logd8_u10(x); }, 1, 2, reps),
      per_element([](__m512d x) { return Sleef_log1pd8_u10(x); }, 0, 1, reps),
      per_element([](__m512d x) { return Sleef_tanhd8_u10(x); }, -3, 3, reps),
      per_element([one](__m512d x) { return _mm512_div_pd(one, x); }, 1, 2, reps),
  };
}
"""
NAMES = [
    "add (loop only)",
    "exp, x in [-6, 0]",
    "log, x in [1, 2]",
    "log1p, x in [0, 1]",
    "tanh, x in [-3, 3]",
    "1 / x, x in [1, 2]",
]


def relu_kernel_ns(repeats: int) -> float:
    """relu's C++ kernel: ns per point and neuron and step at n = 100, p = 6, m = 10^4."""
    gen = torch.Generator().manual_seed(0)
    n, p, m = 100, 6, 10_000
    X = torch.nn.functional.normalize(torch.randn(n, p - 1, generator=gen, dtype=torch.float64))
    Xt = torch.cat([X, torch.ones(n, 1, dtype=torch.float64)], 1).contiguous()
    Wt = torch.randn(p, m, generator=gen, dtype=torch.float64)
    a = torch.randint(0, 2, (m,), generator=gen, dtype=torch.float64) * 2 - 1
    y = torch.randn(n, generator=gen, dtype=torch.float64)
    kernel = streamed_kernel.StreamedKernel(p)
    for _ in range(3):
        kernel(Wt, Xt, y, a, 1.0)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(50):
            kernel(Wt, Xt, y, a, 1.0)
        times.append((time.perf_counter() - start) / 50)
    return statistics.median(times) * 1e9 / (n * m)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if streamed_kernel.cpu_isa() != "avx512":
        raise SystemExit("bench_vector_math.py: needs an AVX-512 CPU (torch's capability)")
    from torch.utils.cpp_extension import load_inline

    torch.set_num_threads(1)
    folder = extension_folder() / "bench_vector_math"
    folder.mkdir(parents=True, exist_ok=True)
    module = load_inline(
        "minnorm_bench_vector_math",
        cpp_sources=[SOURCE],
        functions=["timings"],
        extra_cflags=["-O3", "-mavx512f", "-mavx512dq", "-mfma"],
        build_directory=str(folder),
    )
    runs = [module.timings(args.reps) for _ in range(args.repeats)]
    relu = relu_kernel_ns(args.repeats)
    print(f"median of {args.repeats} runs of {args.reps} x 2048 elements, 1 thread")
    print(f"relu's C++ kernel, whole step: {relu:.3f} ns per point and neuron (2x: {2 * relu:.3f})")
    print("| function (SLEEF u10, AVX-512) | ns per element | / relu's step per point and neuron |")
    print("|---|---|---|")
    for i, name in enumerate(NAMES):
        ns = statistics.median(run[i] for run in runs)
        print(f"| {name} | {ns:.3f} | {ns / relu:.2f} |")


if __name__ == "__main__":
    main()
