"""The C++ streamed kernel against inductor's compiled ``streamed_gradient``: equal bit for bit.

The kernel keeps the activation pattern as bits instead of recomputing Z, but repeats every
floating-point operation of the compiled formula in the same order, so gradients, losses and
whole GD trajectories must be identical, not merely close (the closeness to independent
references is tested through ``FusedGradient`` in test_gd_step.py and test_seed_batch.py).
"""

from __future__ import annotations

import logging
import warnings

import pytest
import torch

from minnorm.core.model import TwoLayerReLU, augment_inputs
from minnorm.training import streamed_kernel
from minnorm.training.gd_step import (
    _INDUCTOR_IMPORT_WARNING,
    _STREAMED_INDUCTOR_OPTIONS,
    FusedGradient,
    residual_scale,
    streamed_gradient,
)

pytestmark = pytest.mark.skipif(
    not streamed_kernel.available(), reason="inductor does not pick AVX-512 here"
)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as in a training job: the kernel's setting, and the one in which the
    compiled formula does not split its sums over m between threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def inputs(S: int | None, n: int, p: int, m: int, seed: int = 0, labels_per_run: bool = False):
    """(Wt: (S, p, m) or (p, m), Xt: (n, p), y: (n,) or (S, n), a: (S, m) or (m,)); rows of Xt of
    norm 1 and W ~ N(0, 1), so that about half the pattern bits are set."""
    gen = torch.Generator().manual_seed(seed)
    batch = () if S is None else (S,)
    Xt = torch.nn.functional.normalize(torch.randn(n, p, generator=gen, dtype=torch.float64), dim=1)
    y = torch.randn(*(batch if labels_per_run else ()), n, generator=gen, dtype=torch.float64)
    Wt = torch.randn(*batch, p, m, generator=gen, dtype=torch.float64)
    a = torch.randint(0, 2, (*batch, m), generator=gen, dtype=torch.float64) * 2 - 1
    return Wt, Xt, y, a


def compiled_formula(*args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``streamed_gradient`` compiled for these static shapes, as a training job compiles it."""
    step = torch.compile(
        streamed_gradient, fullgraph=True, dynamic=False, options=_STREAMED_INDUCTOR_OPTIONS
    )
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=_INDUCTOR_IMPORT_WARNING, category=DeprecationWarning
        )
        return step(*args)


@pytest.mark.slow  # compiles the formula for each shape and one kernel per p
@pytest.mark.parametrize(
    ("S", "n", "p", "m", "labels_per_run"),
    [
        (5, 100, 6, 1000, False),  # Figure 1's shapes (m = 62 x 16 + 8: a tail)
        (3, 101, 6, 2000, True),  # an odd n: the last point alone; labels per run
        (None, 30, 6, 1003, False),  # one run, unbatched
        (1, 7, 3, 5, False),  # m below one chunk of 16 lanes
        (2, 17, 12, 48, True),  # the largest p of the streamed formula
        (2, 1, 2, 40, False),  # a single point
        (
            2,
            20,
            6,
            3 * 256 + 40,
            False,
        ),  # several of the kernel's blocks of 256 neurons, and a part
        (None, 11, 6, 2**15 + 3, False),  # above STREAMED_BLOCK_ABOVE_M: still the unblocked sums
    ],
)
def test_kernel_equals_the_compiled_formula_bit_for_bit(S, n, p, m, labels_per_run):
    Wt, Xt, y, a = inputs(S, n, p, m, labels_per_run=labels_per_run)
    kernel = streamed_kernel.StreamedKernel(p)
    for loss in ("half_sum", "mean"):
        scale = torch.tensor(residual_scale(loss, n), dtype=torch.float64)
        g_ref, v_ref = compiled_formula(Wt, Xt, y, a, scale)
        g, v = kernel(Wt, Xt, y, a, scale)
        assert (
            g.shape == g_ref.shape == (*Wt.shape[:-2], m, p)
            and v.shape == v_ref.shape == Wt.shape[:-2]
        )
        assert g.mT.is_contiguous()
        assert torch.equal(g, g_ref) and torch.equal(v, v_ref), loss
        for s in range(S or 0):  # each run of a batch as it would be alone
            g_s, v_s = kernel(Wt[s], Xt, y[s] if labels_per_run else y, a[s], scale)
            assert torch.equal(g_s, g[s]) and torch.equal(v_s, v[s])
    assert (
        0.2 < float((Xt @ Wt > 0).double().mean()) < 0.8
    )  # both kinds of pattern bits, in every chunk


@pytest.mark.slow
def test_gd_trajectories_through_pattern_changes_are_identical():
    """200 GD steps at a step size that flips activation patterns: the kernel's iterates are the
    compiled formula's, bit for bit, and the patterns did change along the way."""
    gen = torch.Generator().manual_seed(1)
    X = torch.nn.functional.normalize(torch.randn(40, 5, generator=gen, dtype=torch.float64), dim=1)
    W0 = torch.randn(3, 333, 6, generator=gen, dtype=torch.float64)
    a = torch.randint(0, 2, (3, 333), generator=gen, dtype=torch.float64) * 2 - 1
    y = 3 * torch.randn(3, 40, generator=gen, dtype=torch.float64)
    steps = {}
    for use_kernel in (True, False):
        model = TwoLayerReLU(W0.clone(), a, True)
        step = FusedGradient(model, X, y, "half_sum", kernel=use_kernel)
        assert step.kernel == use_kernel and step.compiled and step.formula == "streamed"
        step.lay_out(model.W)
        W = model.W.detach()
        losses = []
        for _ in range(200):
            grad, loss = step(W)
            W -= 0.1 * grad
            losses.append(loss.clone())
        steps[use_kernel] = (W.clone(), torch.stack(losses))
    assert torch.equal(steps[True][0], steps[False][0]) and torch.equal(
        steps[True][1], steps[False][1]
    )
    Xt = augment_inputs(X, True)
    flipped = ((Xt @ W0.mT > 0) != (Xt @ steps[True][0].mT > 0)).sum()
    assert flipped > 100  # the pattern moved: the bits are recomputed every step, not frozen


def test_fused_gradient_takes_the_kernel_only_where_it_repeats_the_formula():
    gen = torch.Generator().manual_seed(0)
    X, y = (
        torch.randn(10, 5, generator=gen, dtype=torch.float64),
        torch.randn(10, generator=gen, dtype=torch.float64),
    )
    W0, a = (
        torch.randn(64, 6, generator=gen, dtype=torch.float64),
        torch.ones(64, dtype=torch.float64),
    )
    model = TwoLayerReLU(W0, a, True)
    assert FusedGradient(model, X, y, "half_sum").kernel
    torch.set_num_threads(2)
    assert not FusedGradient(model, X, y, "half_sum").kernel  # inductor's threads are faster
    torch.set_num_threads(1)
    assert not FusedGradient(model, X, y, "half_sum", kernel=False).kernel
    assert not FusedGradient(
        model, X, y, "half_sum", block=16
    ).kernel  # blocked: another order of sums
    assert not FusedGradient(model, X, y, "half_sum", formula="matmul").kernel
    model32 = TwoLayerReLU(model.W.detach().float(), model.a.float(), True)
    assert not FusedGradient(model32, X.float(), y.float(), "half_sum").kernel


def test_a_kernel_that_cannot_be_built_falls_back_to_the_compiled_formula(monkeypatch, caplog):
    def broken(p):
        raise RuntimeError("no compiler")

    monkeypatch.setattr(streamed_kernel.StreamedKernel, "__init__", lambda self, p: broken(p))
    gen = torch.Generator().manual_seed(0)
    X, y = (
        torch.randn(10, 5, generator=gen, dtype=torch.float64),
        torch.randn(10, generator=gen, dtype=torch.float64),
    )
    W0, a = (
        torch.randn(64, 6, generator=gen, dtype=torch.float64),
        torch.ones(64, dtype=torch.float64),
    )
    model = TwoLayerReLU(W0, a, True)
    with caplog.at_level(logging.WARNING, logger="minnorm.training.gd_step"):
        step = FusedGradient(model, X, y, "half_sum")
    assert not step.kernel and step.formula == "streamed"
    assert "C++ streamed kernel could not be built (no compiler)" in caplog.text


def test_the_kernel_refuses_inputs_it_would_misread():
    Wt, Xt, y, a = inputs(2, 9, 4, 20)
    kernel, scale = streamed_kernel.StreamedKernel(4), torch.tensor(1.0, dtype=torch.float64)
    with pytest.raises(ValueError, match="Wt is not"):
        kernel(Wt.float(), Xt, y, a, scale)
    with pytest.raises(ValueError, match="Wt is not"):
        kernel(Wt.mT, Xt, y, a, scale)  # (m, p) memory order
    with pytest.raises(ValueError, match="shapes do not match"):
        kernel(Wt, Xt, y, a[0], scale)
    with pytest.raises(ValueError, match="shapes do not match"):
        kernel(Wt, Xt[:, :3].contiguous(), y, a, scale)
