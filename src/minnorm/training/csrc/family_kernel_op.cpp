// The family GD step (family_kernel.h) as the torch operator minnorm::family_step_avx512.
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include "family_kernel.h"

namespace {

void check_doubles(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.scalar_type() == at::kDouble && t.device().is_cpu() && t.is_contiguous(), name,
              " must be a contiguous float64 CPU tensor");
}

// Wt: (p, m), X: (n, p), y: (n,), a: (m,); writes G (as Wt), Ga ((m,), when trained), loss (0-d)
// and the scratch tensors of family_kernel.h.
void family_step_op(int64_t activation, bool trained, const at::Tensor& Wt, const at::Tensor& X,
                    const at::Tensor& y, const at::Tensor& a, double leak, double scale,
                    double inv_sqrt_m,
                    const at::Tensor& G, const at::Tensor& Ga, const at::Tensor& loss,
                    const at::Tensor& r, const at::Tensor& lanes, const at::Tensor& D,
                    const at::Tensor& S) {
  for (const auto& [t, name] :
       {std::pair{&Wt, "Wt"}, {&X, "X"}, {&y, "y"}, {&a, "a"}, {&G, "G"}, {&Ga, "Ga"},
        {&loss, "loss"}, {&r, "r"}, {&lanes, "lanes"}, {&D, "D"}, {&S, "S"}})
    check_doubles(*t, name);
  TORCH_CHECK(Wt.dim() == 2, "Wt must be (p, m)");
  const int64_t p = Wt.size(0), m = Wt.size(1), n = X.size(0);
  const int64_t cells = (m + minnorm::kFamilyBlock - 1) / minnorm::kFamilyBlock *
                        minnorm::kFamilyBlock * n;
  TORCH_CHECK(X.dim() == 2 && X.size(1) == p, "X must be (n, p)");
  TORCH_CHECK(y.numel() == n && a.numel() == m && G.sizes() == Wt.sizes() && loss.numel() == 1,
              "y, a, G or loss do not match Wt and X");
  TORCH_CHECK(!trained || Ga.numel() == m, "Ga must have m values when a is trained");
  // leaky_relu and relu keep the pattern as bytes in D (8 per double) and nothing in S.
  const bool leaky = activation == static_cast<int64_t>(minnorm::Family::kLeaky);
  TORCH_CHECK(r.numel() >= n && lanes.numel() >= 8 * n &&
                  D.numel() >= (leaky ? (cells + 63) / 64 : cells) &&
                  (!trained || leaky || S.numel() >= cells),
              "scratch tensors too small");
  const bool done = minnorm::family_step(
      activation, trained, p, Wt.data_ptr<double>(), X.data_ptr<double>(), y.data_ptr<double>(),
      a.data_ptr<double>(), leak, scale, inv_sqrt_m, G.data_ptr<double>(), Ga.data_ptr<double>(),
      loss.data_ptr<double>(), r.data_ptr<double>(), lanes.data_ptr<double>(),
      D.data_ptr<double>(), S.data_ptr<double>(), n, m);
  TORCH_CHECK(done, "the family step is built for p <= ", MINNORM_MAX_P,
              " and activation codes 0-3, got p = ", p, ", activation ", activation);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(minnorm, library) {
  library.def(
      "family_step_avx512(int activation, bool trained, Tensor Wt, Tensor X, Tensor y, Tensor a, "
      "float leak, float scale, float inv_sqrt_m, Tensor(a!) G, Tensor(b!) Ga, Tensor(c!) loss, "
      "Tensor(d!) r, Tensor(e!) lanes, Tensor(f!) D, Tensor(g!) S) -> ()");
}

TORCH_LIBRARY_IMPL(minnorm, CPU, library) { library.impl("family_step_avx512", &family_step_op); }
