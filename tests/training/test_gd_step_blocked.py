"""The streamed step blocked over m (wide networks): same gradient and iterates as the unblocked
formula.

Blocking only reorders the sum over m that gives the network outputs f, so every iterate must
agree with the unblocked compiled step and with the NumPy reference (tests/helpers/reference.py) to
float64 rounding; widths up to ``STREAMED_BLOCK_ABOVE_M`` must not be blocked at all (the default
config's runs keep their iterates bit for bit).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import reference
from minnorm.core.model import TwoLayerReLU, augment_inputs
from minnorm.training import streamed_kernel
from minnorm.training.gd_step import (
    DEFAULT_KERNEL_ISAS,
    STREAMED_BLOCK,
    STREAMED_BLOCK_ABOVE_M,
    CompiledStep,
    residual_scale,
    select_step,
    streamed_gradient,
)

# The same gradient in another order of additions: float64 rounding over sums of m terms.
FLOAT64_RTOL = 1e-12


def problem(
    n: int, d: int, m: int, seed: int = 5, bias: bool = True
) -> tuple[TwoLayerReLU, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    X = torch.nn.functional.normalize(torch.randn(n, d, generator=gen, dtype=torch.float64), dim=1)
    y = torch.randn(n, generator=gen, dtype=torch.float64)
    W0 = torch.randn(m, d + int(bias), generator=gen, dtype=torch.float64)
    a = torch.randint(0, 2, (m,), generator=gen, dtype=torch.float64) * 2 - 1
    return TwoLayerReLU(W0, a, bias), X, y


@pytest.mark.parametrize(
    ("m", "block", "loss"), [(600, 128, "half_sum"), (512, 128, "mean"), (700, 700, "half_sum")]
)
def test_blocked_formula_uncompiled_matches_the_numpy_gradient(m, block, loss):
    # 600 = 4 x 128 + 88 (blocks and a remainder), 512 = 4 x 128 (no remainder), block = m
    # (unblocked).
    model, X, y = problem(20, 4, m)
    Xt = augment_inputs(X, True).contiguous()
    scale = torch.tensor(residual_scale(loss, X.shape[0]), dtype=torch.float64)
    grad, value = streamed_gradient(
        model.W.detach().t().contiguous(), Xt, y, model.a, scale, block=block
    )
    ref_value, ref_grad = reference.loss_and_grad(
        model.W.detach().numpy(), X.numpy(), y.numpy(), model.a.numpy(), loss, True
    )
    assert grad.shape == model.W.shape
    np.testing.assert_allclose(
        grad.numpy(), ref_grad, rtol=FLOAT64_RTOL, atol=1e-15 * np.abs(ref_grad).max()
    )
    assert float(value) == pytest.approx(ref_value, rel=FLOAT64_RTOL)


def test_default_block_choice_leaves_default_widths_unblocked():
    for m, expected in (
        (1000, None),
        (STREAMED_BLOCK_ABOVE_M, None),
        (STREAMED_BLOCK_ABOVE_M + 1, STREAMED_BLOCK),
    ):
        model, X, y = problem(5, 2, m)
        assert CompiledStep(model, X, y, "half_sum").block == expected, m
        assert select_step("fused", model, X, y, "half_sum", threads=2).block == expected
        # The C++ kernel (one thread) keeps the unblocked formula's sums at every width.
        for isa in DEFAULT_KERNEL_ISAS:
            with_kernel = select_step("fused", model, X, y, "half_sum", threads=1, isa=isa)
            if isa in streamed_kernel.runnable_isas():
                assert with_kernel.name == f"cpp-{isa}", m
    model, X, y = problem(5, 2, 2 * STREAMED_BLOCK_ABOVE_M)
    assert CompiledStep(model, X, y, "half_sum", block=0).block is None  # forced off
    matmul = CompiledStep(model, X, y, "half_sum", formula="matmul")
    assert matmul.block is None and matmul.name == "compiled-matmul"  # matmul: never blocked
    blocked = CompiledStep(model, X, y, "half_sum")
    assert blocked.name == "compiled-streamed-blocked"
    model, X, y = problem(5, 14, 2 * STREAMED_BLOCK_ABOVE_M)  # p = 15 > STREAMED_MAX_P: matmul
    assert CompiledStep(model, X, y, "half_sum").block is None


@pytest.mark.slow  # two torch.compile calls, ~10-20 s on 2 busy cores
def test_blocked_compiled_iterates_equal_the_unblocked_step_and_the_reference():
    """20 GD steps at n = 40, p = 6, m = 1000 = 7 x 136 + 48 (forced block 136): every iterate
    equal to the unblocked compiled step's and to the NumPy GD loop's to 1e-12 relative."""
    n, d, m, lr, steps = 40, 5, 1000, 0.05, 20
    runs = {}
    for block in (0, 136):
        model, X, y = problem(n, d, m)
        fused = CompiledStep(model, X, y, "half_sum", block=block)
        assert fused.block == (block or None)
        fused.lay_out(model.W)
        W = model.W
        iterates = [W.detach().clone()]
        for _ in range(steps):
            grad, _ = fused(W)
            with torch.no_grad():
                W.sub_(grad, alpha=lr)
            iterates.append(W.detach().clone())
        assert fused.compiled, "torch.compile fell back to eager"
        runs[block] = iterates
    model, X, y = problem(n, d, m)
    ref, diverged = reference.gd_iterates(
        X.numpy(),
        y.numpy(),
        model.W.detach().numpy(),
        model.a.numpy(),
        lr,
        "half_sum",
        steps,
        True,
        1e6,
    )
    assert diverged is None
    for k in range(steps + 1):
        blocked, unblocked = runs[136][k], runs[0][k]
        scale = float(unblocked.abs().max())
        torch.testing.assert_close(blocked, unblocked, rtol=FLOAT64_RTOL, atol=FLOAT64_RTOL * scale)
        np.testing.assert_allclose(
            blocked.numpy(), ref[k], rtol=FLOAT64_RTOL, atol=FLOAT64_RTOL * scale
        )
    # The steps moved W (a test whose iterates stay at W0 could not tell the formulas apart).
    assert float((runs[136][-1] - runs[136][0]).abs().max()) > 1e-3
