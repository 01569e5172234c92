// The streamed step as the torch operator minnorm::streamed_step_<isa> (one per build: the
// instruction set is that of streamed_step.cpp in the same library).
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include "streamed_step.h"

#if defined(MINNORM_ISA_AVX512)
#define MINNORM_OP "streamed_step_avx512"
#elif defined(MINNORM_ISA_AVX2)
#define MINNORM_OP "streamed_step_avx2"
#else
#define MINNORM_OP "streamed_step_portable"
#endif

namespace {

void check_doubles(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.scalar_type() == at::kDouble && t.device().is_cpu() && t.is_contiguous(), name,
              " must be a contiguous float64 CPU tensor");
}

// Wt: (S, p, m) or (p, m), X: (n, p), y: (n,) or (S, n), a: (S, m) or (m,); writes G (as Wt),
// loss ((S,) or 0-d) and the scratch tensors of streamed_step.h (bits as int16).
void streamed_step_op(const at::Tensor& Wt, const at::Tensor& X, const at::Tensor& y,
                      const at::Tensor& a, double scale, double inv_sqrt_m, const at::Tensor& G,
                      const at::Tensor& loss, const at::Tensor& f, const at::Tensor& lanes,
                      const at::Tensor& rx, const at::Tensor& bits) {
  for (const auto& [t, name] : {std::pair{&Wt, "Wt"}, {&X, "X"}, {&y, "y"}, {&a, "a"}, {&G, "G"},
                                {&loss, "loss"}, {&f, "f"}, {&lanes, "lanes"}, {&rx, "rx"}})
    check_doubles(*t, name);
  TORCH_CHECK(Wt.dim() == 2 || Wt.dim() == 3, "Wt must be (p, m) or (S, p, m)");
  const int64_t S = Wt.dim() == 3 ? Wt.size(0) : 1;
  const int64_t p = Wt.size(-2), m = Wt.size(-1), n = X.size(0);
  const int64_t chunks = (m + minnorm::kLanes - 1) / minnorm::kLanes;
  const int64_t blocks = (chunks + minnorm::kBlockChunks - 1) / minnorm::kBlockChunks;
  TORCH_CHECK(X.dim() == 2 && X.size(1) == p, "X must be (n, p)");
  TORCH_CHECK(y.numel() == n || y.numel() == S * n, "y must be (n,) or (S, n)");
  TORCH_CHECK(a.numel() == S * m && G.sizes() == Wt.sizes() && loss.numel() == S,
              "a, G or loss do not match Wt");
  TORCH_CHECK(f.numel() >= n && lanes.numel() >= n * minnorm::kLanes && rx.numel() >= n * p,
              "scratch tensors too small");
  TORCH_CHECK(bits.scalar_type() == at::kShort && bits.is_contiguous() &&
                  bits.numel() >= blocks * n * minnorm::kBlockChunks,
              "bits must be a contiguous int16 tensor of ceil(m / 256) n 16 values");
  const bool done = minnorm::streamed_step(
      p, Wt.data_ptr<double>(), X.data_ptr<double>(), y.data_ptr<double>(), a.data_ptr<double>(),
      scale, inv_sqrt_m, G.data_ptr<double>(), loss.data_ptr<double>(), f.data_ptr<double>(),
      lanes.data_ptr<double>(), rx.data_ptr<double>(),
      reinterpret_cast<uint16_t*>(bits.data_ptr<int16_t>()), S, n, m,
      y.numel() == n ? 0 : n);
  TORCH_CHECK(done, "the streamed step is built for p <= ", MINNORM_MAX_P, ", got p = ", p);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(minnorm, library) {
  library.def(MINNORM_OP
              "(Tensor Wt, Tensor X, Tensor y, Tensor a, float scale, float inv_sqrt_m, "
              "Tensor(a!) G, Tensor(b!) loss, Tensor(c!) f, Tensor(d!) lanes, Tensor(e!) rx, "
              "Tensor(f!) bits) -> ()");
}

TORCH_LIBRARY_IMPL(minnorm, CPU, library) { library.impl(MINNORM_OP, &streamed_step_op); }
