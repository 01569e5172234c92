"""Tests of minnorm.training.gd_step and gradient_formulas: the hand-written gradient against
autograd and NumPy, every step implementation against the NumPy reference, the compiled step against
eager. (Which implementation is chosen: test_gd_step_selection.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import reference
from minnorm.core.model import TwoLayerReLU, augment_inputs
from minnorm.training import streamed_kernel
from minnorm.training.gd_step import (
    STREAMED_MAX_P,
    CompiledStep,
    EagerStep,
    KernelStep,
    UncompiledStep,
    analytic_gradient,
    loss_value,
    residual_scale,
    select_step,
    streamed_gradient,
)

# Two float64 evaluations of the same gradient in a different order of operations differ by
# rounding, ~1e-16 relative per operation over sums of n = 30 terms.
FLOAT64_RTOL = 1e-12
# float32 rounding (~6e-8) over the same sums.
FLOAT32_RTOL = 1e-5


def problem(
    n: int = 30, d: int = 4, m: int = 200, dtype: torch.dtype = torch.float64, bias: bool = True
):
    gen = torch.Generator().manual_seed(3)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = torch.randn(n, generator=gen, dtype=torch.float64)
    W0 = torch.randn(m, d + int(bias), generator=gen, dtype=torch.float64)
    a = torch.randint(0, 2, (m,), generator=gen, dtype=torch.float64) * 2 - 1
    return TwoLayerReLU(W0.to(dtype), a.to(dtype), bias), X.to(dtype), y.to(dtype)


@pytest.mark.parametrize("loss", ["half_sum", "mean"])
@pytest.mark.parametrize("bias", [True, False])
def test_eager_and_analytic_gradients_match_the_formula(loss, bias):
    model, X, y = problem(bias=bias)
    ref_value, ref_grad = reference.loss_and_grad(
        model.W.detach().numpy(), X.numpy(), y.numpy(), model.a.numpy(), loss, bias
    )
    grad, value = EagerStep(model, X, y, loss)(model.W)
    np.testing.assert_allclose(grad.numpy(), ref_grad, rtol=FLOAT64_RTOL, atol=1e-15)
    assert float(value) == pytest.approx(ref_value, rel=FLOAT64_RTOL)
    scale = torch.tensor(residual_scale(loss, X.shape[0]), dtype=torch.float64)
    grad, value = analytic_gradient(model.W.detach(), augment_inputs(X, bias), y, model.a, scale)
    np.testing.assert_allclose(grad.numpy(), ref_grad, rtol=FLOAT64_RTOL, atol=1e-15)
    assert float(value) == pytest.approx(ref_value, rel=FLOAT64_RTOL)
    # The streamed formula (uncompiled here) takes W transposed and returns the gradient as a view.
    grad, value = streamed_gradient(
        model.W.detach().t().contiguous(), augment_inputs(X, bias), y, model.a, scale
    )
    assert grad.shape == model.W.shape
    np.testing.assert_allclose(grad.numpy(), ref_grad, rtol=FLOAT64_RTOL, atol=1e-15)
    assert float(value) == pytest.approx(ref_value, rel=FLOAT64_RTOL)


def test_mean_loss_is_two_over_n_times_the_half_sum_step():
    model, X, y = problem()
    g_half, _ = EagerStep(model, X, y, "half_sum")(model.W)
    g_mean, _ = EagerStep(model, X, y, "mean")(model.W)
    torch.testing.assert_close(g_mean, g_half * 2 / X.shape[0], rtol=FLOAT64_RTOL, atol=0)


def test_loss_values_and_bad_names():
    f, y = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([0.0, 0.0, 1.0])
    assert float(loss_value(f, y, "half_sum")) == 0.5 * (1 + 4 + 9)
    assert float(loss_value(f, y, "mean")) == pytest.approx(14 / 3)
    with pytest.raises(ValueError, match="training.loss must be one of"):
        loss_value(f, y, "l1")
    model, X, y = problem()
    with pytest.raises(ValueError, match="training.step_impl must be one of"):
        select_step("blocked", model, X, y, "half_sum")
    with pytest.raises(ValueError, match="training.loss must be one of"):
        select_step("eager", model, X, y, "l1")
    with pytest.raises(ValueError, match="formula must be one of"):
        CompiledStep(model, X, y, "half_sum", formula="blocked")


def test_eager_gradient_refuses_a_foreign_W():
    model, X, y = problem()
    with pytest.raises(ValueError, match="model's own parameter"):
        EagerStep(model, X, y, "mean")(model.W.detach().clone())


# Every implementation of the step (GradientStep.name); the compiled ones compile (slow).
PATHS = [
    "eager",
    "uncompiled-matmul",
    pytest.param("compiled-streamed", marks=pytest.mark.slow),
    pytest.param("compiled-matmul", marks=pytest.mark.slow),
    *(f"cpp-{isa}" for isa in streamed_kernel.ISAS),
]


def make_step(path: str, model: TwoLayerReLU, X: torch.Tensor, y: torch.Tensor, loss: str):
    """The step implementation named ``path`` (skips a C++ build this CPU cannot run)."""
    if path.startswith("cpp-"):
        isa = path.removeprefix("cpp-")
        if isa not in streamed_kernel.runnable_isas():
            pytest.skip(
                f"this CPU does not run the {isa} build (torch reports "
                f"{torch.backends.cpu.get_cpu_capability()})"
            )
        return KernelStep(model, X, y, loss, isa)
    if path.startswith("compiled-"):
        return CompiledStep(model, X, y, loss, formula=path.removeprefix("compiled-"))
    return {"eager": EagerStep, "uncompiled-matmul": UncompiledStep}[path](model, X, y, loss)


def batch(S: int = 3, n: int = 21, d: int = 4, m: int = 300, seed: int = 11):
    """S runs of width m on unit-norm inputs X: (n, d) (n odd, m = 18 x 16 + 12), W0: (S, m, d + 1),
    a: (S, m), y: (S, n)."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.nn.functional.normalize(torch.randn(n, d, generator=gen, dtype=torch.float64), dim=1)
    y = torch.randn(S, n, generator=gen, dtype=torch.float64)
    W0 = torch.randn(S, m, d + 1, generator=gen, dtype=torch.float64)
    a = torch.randint(0, 2, (S, m), generator=gen, dtype=torch.float64) * 2 - 1
    return X, y, W0, a


@pytest.mark.parametrize("path", PATHS)
def test_every_path_matches_the_numpy_reference(path, one_thread):
    """Gradient and loss of a batch of 3 runs, each against NumPy (both losses); a single run
    equals its row of the batch (bit for bit for the C++ kernel); then 60 GD steps at lr = 0.2,
    through activation-pattern flips, equal the NumPy loop's iterates to 1e-12 relative."""
    X, y, W0, a = batch()
    for loss in ("half_sum", "mean"):
        model = TwoLayerReLU(W0.clone(), a, True)
        step = make_step(path, model, X, y, loss)
        assert step.name == path
        step.lay_out(model.W)
        g, v = step(model.W)
        assert g.shape == W0.shape and v.shape == (3,)
        for s in range(3):
            ref_value, ref_grad = reference.loss_and_grad(
                W0[s].numpy(), X.numpy(), y[s].numpy(), a[s].numpy(), loss, True
            )
            atol = 1e-15 * np.abs(ref_grad).max()
            np.testing.assert_allclose(g[s].numpy(), ref_grad, rtol=FLOAT64_RTOL, atol=atol)
            assert float(v[s]) == pytest.approx(ref_value, rel=FLOAT64_RTOL)
            single = TwoLayerReLU(W0[s].clone(), a[s], True)
            single_step = make_step(path, single, X, y[s], loss)
            single_step.lay_out(single.W)
            g_s, v_s = single_step(single.W)
            if path.startswith("cpp-"):
                assert torch.equal(g_s, g[s]) and torch.equal(v_s, v[s])
            np.testing.assert_allclose(g_s.numpy(), ref_grad, rtol=FLOAT64_RTOL, atol=atol)
    steps, lr = 60, 0.2
    model = TwoLayerReLU(W0.clone(), a, True)
    step = make_step(path, model, X, y, "half_sum")
    step.lay_out(model.W)
    for _ in range(steps):
        grad, _ = step(model.W)
        with torch.no_grad():
            model.W.sub_(grad, alpha=lr)
    W = model.W.detach()
    Xt = augment_inputs(X, True)
    assert ((Xt @ W0.mT > 0) != (Xt @ W.mT > 0)).sum() > 20  # patterns flipped on the way
    for s in range(3):
        iterates, diverged = reference.gd_iterates(
            X.numpy(), y[s].numpy(), W0[s].numpy(), a[s].numpy(), lr, "half_sum", steps, True, 1e6
        )
        assert diverged is None
        scale = float(np.abs(iterates[steps]).max())
        np.testing.assert_allclose(
            W[s].numpy(), iterates[steps], rtol=FLOAT64_RTOL, atol=FLOAT64_RTOL * scale
        )


@pytest.mark.slow  # the first torch.compile in a process takes ~5-10 s on 2 cores
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_gradient_equals_eager_and_compiles(dtype):
    rtol = FLOAT64_RTOL if dtype == torch.float64 else FLOAT32_RTOL
    # p = 5 and 4 take the streamed formula, p = STREAMED_MAX_P + 4 the matrix-product one.
    cases = (
        ("half_sum", True, 4, "streamed"),
        ("mean", False, 4, "streamed"),
        ("half_sum", True, STREAMED_MAX_P + 3, "matmul"),
    )
    for loss, bias, d, formula in cases:
        model, X, y = problem(d=d, dtype=dtype, bias=bias)
        fused = CompiledStep(model, X, y, loss)
        eager = EagerStep(model, X, y, loss)
        W_before = model.W.detach().clone()
        assert model.W.is_contiguous()  # the constructor leaves the model alone
        fused.lay_out(model.W)
        assert torch.equal(model.W.detach(), W_before)  # same values, maybe another layout
        assert model.W.t().is_contiguous() == (formula == "streamed")
        g_fused, v_fused = fused(model.W)
        assert fused.compiled, "torch.compile fell back to eager"
        assert fused.formula == formula and fused.name == f"compiled-{formula}"
        g_eager, v_eager = eager(model.W)
        scale = float(g_eager.abs().max())
        torch.testing.assert_close(g_fused, g_eager, rtol=rtol, atol=rtol * scale)
        torch.testing.assert_close(v_fused, v_eager, rtol=rtol, atol=0)
        # Ten GD steps with each: the iterates stay together.
        W_f, W_e = model.W.detach().clone(), model.W.detach().clone()
        for _ in range(10):
            W_f -= 0.1 * fused(W_f)[0]
            with torch.no_grad():
                model.W.copy_(W_e)
            W_e -= 0.1 * eager(model.W)[0]
        torch.testing.assert_close(W_f, W_e, rtol=rtol, atol=rtol)


_PEAK_MEMORY_SCRIPT = """
import sys
import torch
from minnorm.training.gd_step import CompiledStep, KernelStep
from minnorm.core.model import TwoLayerReLU

def status_kb(key):  # resident (VmRSS) or peak resident (VmHWM) size of this process
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))

n, m, p = 200, 200_000, 6
gen = torch.Generator().manual_seed(0)
model = TwoLayerReLU(torch.randn(m, p, generator=gen, dtype=torch.float64),
                     torch.ones(m, dtype=torch.float64), True)
X = torch.randn(n, p - 1, generator=gen, dtype=torch.float64)
y = torch.randn(n, dtype=torch.float64)
torch.set_num_threads(1)
fused = (KernelStep if sys.argv[1] == "kernel" else CompiledStep)(model, X, y, "half_sum")
fused.lay_out(model.W)
grad, _ = fused(model.W)  # compiles, or loads the kernel
assert fused.name in ("compiled-streamed-blocked", "cpp-" + sys.argv[-1])
del grad
before = status_kb("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets VmHWM to the current resident size
grad, _ = fused(model.W)
print((status_kb("VmHWM") - before) * 1024)
"""


@pytest.mark.slow  # compiles in a fresh process
@pytest.mark.parametrize("step", ["compiled", "kernel"])
def test_streamed_step_never_stores_an_n_by_m_matrix(step):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", _PEAK_MEMORY_SCRIPT, step, streamed_kernel.cpu_isa()],
        capture_output=True,
        text=True,
        check=True,
    )
    peak_increase = int(result.stdout.split()[-1])
    n_by_m = 200 * 200_000 * 8  # 320 MB in float64
    # W^T, the gradient and a few (m,) vectors: ~ 3 m p 8 B = 29 MB; one (n, m) buffer would be 320
    # MB.
    assert peak_increase < n_by_m / 4, f"peak grew by {peak_increase / 1e6:.0f} MB"
