"""The C++ streamed kernel, each build (AVX-512, AVX2, portable) that this CPU runs: against
inductor's compiled ``streamed_gradient`` and against the NumPy reference.

Every build repeats the floating-point operations of the formula compiled for AVX-512 in the same
order, so on a CPU where torch dispatches to AVX-512 gradients, losses and whole GD trajectories
must equal the compiled formula's bit for bit, not merely be close; elsewhere (the compiled
formula then sums in other lanes) they must agree to float64 rounding. A build this CPU cannot
run is skipped with the reason in the test summary.
"""

from __future__ import annotations

import functools
import shutil
import warnings

import numpy as np
import pytest
import torch

from helpers import reference
from minnorm.core.model import TwoLayerReLU, augment_inputs
from minnorm.io import fingerprint
from minnorm.training import streamed_kernel
from minnorm.training.gd_step import (
    INDUCTOR_IMPORT_WARNING,
    STREAMED_INDUCTOR_OPTIONS,
    CompiledStep,
    KernelStep,
    residual_scale,
    streamed_gradient,
)

# Two float64 evaluations of the same gradient in another order of additions: rounding
# (~1e-16 per operation) over sums of up to 2^15 terms, and 300 GD steps.
FLOAT64_RTOL = 1e-12
# Whether the compiled formula's loops are those the kernel repeats (AVX-512): then bit for bit.
EXACT = streamed_kernel.cpu_isa() == "avx512"

SHAPES = [  # (S, n, p, m, labels per run)
    (5, 100, 6, 1000, False),  # Figure 1's shapes (m = 62 x 16 + 8: a tail)
    (3, 101, 6, 2000, True),  # an odd n: the last point alone; labels per run
    (None, 30, 6, 1003, False),  # one run, unbatched
    (1, 7, 3, 5, False),  # m below one chunk of 16 lanes
    (2, 17, 12, 48, True),  # the largest p of the streamed formula
    (2, 1, 2, 40, False),  # a single point
    (2, 20, 6, 3 * 256 + 40, False),  # several of the kernel's blocks of 256 neurons, and a part
    (None, 11, 6, 2**15 + 3, False),  # above STREAMED_BLOCK_ABOVE_M: still the unblocked sums
]


@pytest.fixture(autouse=True)
def one_thread(one_thread):
    """One torch thread, as in a training job: the kernel's setting, and the one in which the
    compiled formula does not split its sums over m between threads."""
    yield


def need(isa: str) -> None:
    """Skip unless this CPU runs the ``isa`` build."""
    if isa not in streamed_kernel.runnable_isas():
        pytest.skip(
            f"this CPU does not run the {isa} build (torch reports "
            f"{torch.backends.cpu.get_cpu_capability()})"
        )


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


@functools.cache
def compiled_reference(shape: int, loss: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``streamed_gradient`` compiled for SHAPES[shape], as a training job compiles it (once per
    shape and loss for all builds)."""
    S, n, p, m, labels_per_run = SHAPES[shape]
    Wt, Xt, y, a = inputs(S, n, p, m, labels_per_run=labels_per_run)
    scale = torch.tensor(residual_scale(loss, n), dtype=torch.float64)
    step = torch.compile(
        streamed_gradient, fullgraph=True, dynamic=False, options=STREAMED_INDUCTOR_OPTIONS
    )
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=INDUCTOR_IMPORT_WARNING, category=DeprecationWarning
        )
        return step(Wt, Xt, y, a, scale)


def assert_same(got: torch.Tensor, expected: torch.Tensor, exact: bool) -> None:
    if exact:
        assert torch.equal(got, expected)
    else:
        scale = float(expected.abs().max())
        torch.testing.assert_close(got, expected, rtol=FLOAT64_RTOL, atol=FLOAT64_RTOL * scale)


@pytest.mark.slow  # compiles the formula for each shape (once for all builds)
@pytest.mark.parametrize("shape", range(len(SHAPES)))
@pytest.mark.parametrize("isa", streamed_kernel.ISAS)
def test_every_build_equals_the_compiled_formula(isa, shape):
    need(isa)
    S, n, p, m, labels_per_run = SHAPES[shape]
    Wt, Xt, y, a = inputs(S, n, p, m, labels_per_run=labels_per_run)
    kernel = streamed_kernel.StreamedKernel(p, isa)
    for loss in ("half_sum", "mean"):
        scale = residual_scale(loss, n)
        g_ref, v_ref = compiled_reference(shape, loss)
        g, v = kernel(Wt, Xt, y, a, scale)
        assert g.shape == g_ref.shape == (*Wt.shape[:-2], m, p)
        assert v.shape == v_ref.shape == Wt.shape[:-2]
        assert g.mT.is_contiguous()
        assert_same(g, g_ref, EXACT)
        assert_same(v, v_ref, EXACT)
        for s in range(S or 0):  # each run of a batch as it would be alone, bit for bit
            g_s, v_s = kernel(Wt[s], Xt, y[s] if labels_per_run else y, a[s], scale)
            assert torch.equal(g_s, g[s]) and torch.equal(v_s, v[s])
    # Both kinds of pattern bits, in every chunk.
    assert 0.2 < float((Xt @ Wt > 0).double().mean()) < 0.8


@pytest.mark.parametrize("isa", streamed_kernel.ISAS)
def test_every_build_matches_the_numpy_gradient(isa):
    """Against the formula written out again in NumPy (tests/helpers/reference.py), per run of a
    batch of 3 with odd n = 21, a bias and m = 300 (a tail of 12 neurons)."""
    need(isa)
    gen = torch.Generator().manual_seed(7)
    X = torch.nn.functional.normalize(torch.randn(21, 4, generator=gen, dtype=torch.float64), dim=1)
    y = torch.randn(3, 21, generator=gen, dtype=torch.float64)
    W0 = torch.randn(3, 300, 5, generator=gen, dtype=torch.float64)
    a = torch.randint(0, 2, (3, 300), generator=gen, dtype=torch.float64) * 2 - 1
    kernel = streamed_kernel.StreamedKernel(5, isa)
    for loss in ("half_sum", "mean"):
        g, v = kernel(W0.mT.contiguous(), augment_inputs(X, True), y, a, residual_scale(loss, 21))
        for s in range(3):
            ref_value, ref_grad = reference.loss_and_grad(
                W0[s].numpy(), X.numpy(), y[s].numpy(), a[s].numpy(), loss, True
            )
            np.testing.assert_allclose(
                g[s].numpy(), ref_grad, rtol=FLOAT64_RTOL, atol=1e-15 * np.abs(ref_grad).max()
            )
            assert float(v[s]) == pytest.approx(ref_value, rel=FLOAT64_RTOL)


@pytest.mark.slow  # compiles the formula once; 300 steps per build
def test_gd_trajectories_through_pattern_changes():
    """300 GD steps of 3 runs at a step size that flips activation patterns: every build's iterates
    are the compiled formula's (bit for bit on AVX-512) and the NumPy loop's to 1e-12 relative,
    and the patterns did change along the way."""
    gen = torch.Generator().manual_seed(1)
    X = torch.nn.functional.normalize(torch.randn(40, 5, generator=gen, dtype=torch.float64), dim=1)
    W0 = torch.randn(3, 333, 6, generator=gen, dtype=torch.float64)
    a = torch.randint(0, 2, (3, 333), generator=gen, dtype=torch.float64) * 2 - 1
    y = 3 * torch.randn(3, 40, generator=gen, dtype=torch.float64)
    steps, lr = 300, 0.1

    def run(make):
        """(W after the steps, the losses at the iterates) of the step ``make(model)`` makes."""
        model = TwoLayerReLU(W0.clone(), a, True)
        step = make(model)
        step.lay_out(model.W)
        W = model.W.detach()
        losses = []
        for _ in range(steps):
            grad, loss = step(W)
            W -= lr * grad
            losses.append(loss.clone())
        return W.clone(), torch.stack(losses)

    W_ref, losses_ref = run(lambda model: CompiledStep(model, X, y, "half_sum"))
    for isa in streamed_kernel.runnable_isas():
        W, losses = run(lambda model, isa=isa: KernelStep(model, X, y, "half_sum", isa))
        assert_same(W, W_ref, EXACT)
        assert_same(losses, losses_ref, EXACT)
    Xt = augment_inputs(X, True)
    flipped = ((Xt @ W0.mT > 0) != (Xt @ W_ref.mT > 0)).sum()
    assert flipped > 100  # the pattern moved: the bits are recomputed every step, not frozen
    for s in range(3):
        iterates, diverged = reference.gd_iterates(
            X.numpy(), y[s].numpy(), W0[s].numpy(), a[s].numpy(), lr, "half_sum", steps, True, 1e6
        )
        assert diverged is None
        np.testing.assert_allclose(
            W[s].numpy(),
            iterates[steps],
            rtol=FLOAT64_RTOL,
            atol=FLOAT64_RTOL * float(W.abs().max()),
        )


@pytest.mark.parametrize("isa", streamed_kernel.ISAS)
def test_non_finite_weights_give_non_finite_losses_not_a_crash(isa):
    """A diverging run reaches inf and NaN weights: the kernel reports a non-finite loss (which the
    system's divergence check needs) like the formula, in every build."""
    need(isa)
    Wt, Xt, y, a = inputs(2, 9, 4, 40)
    Wt[0, 1, 3] = float("inf")
    Wt[1, 2, 7] = float("nan")
    kernel = streamed_kernel.StreamedKernel(4, isa)
    g, v = kernel(Wt, Xt, y, a, 1.0)
    g_ref, v_ref = streamed_gradient(Wt, Xt, y, a, torch.tensor(1.0, dtype=torch.float64))
    assert not torch.isfinite(v).any() and not torch.isfinite(v_ref).any()
    assert torch.equal(torch.isfinite(g), torch.isfinite(g_ref))


def test_the_kernel_refuses_inputs_it_would_misread():
    Wt, Xt, y, a = inputs(2, 9, 4, 20)
    kernel = streamed_kernel.StreamedKernel(4)
    with pytest.raises(ValueError, match="Wt is not"):
        kernel(Wt.float(), Xt, y, a, 1.0)
    with pytest.raises(ValueError, match="Wt is not"):
        kernel(Wt.mT, Xt, y, a, 1.0)  # (m, p) memory order
    with pytest.raises(ValueError, match="shapes do not match"):
        kernel(Wt, Xt, y, a[0], 1.0)
    with pytest.raises(ValueError, match="shapes do not match"):
        kernel(Wt[:, :3].contiguous(), Xt[:, :3].contiguous(), y, a, 1.0)  # another p
    with pytest.raises(ValueError, match="built for 1 <= p <= 12"):
        streamed_kernel.StreamedKernel(13)
    with pytest.raises(ValueError, match="isa must be one of"):
        streamed_kernel.StreamedKernel(4, "sse2")


def test_builds_are_named_by_their_sources_and_flags(tmp_path, monkeypatch):
    """Editing a kernel source names a new library (never an old one loaded for new code), and
    changes the numerics fingerprint (runs retrain); each build has its own name."""
    names = {isa: streamed_kernel.library_name(isa) for isa in streamed_kernel.ISAS}
    assert len(set(names.values())) == len(names)
    assert all(name.startswith(f"minnorm_streamed_{isa}_") for isa, name in names.items())
    assert "-ffp-contract=off" in streamed_kernel.build_flags("portable")
    package = tmp_path / "minnorm"
    shutil.copytree(fingerprint.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(fingerprint, "PACKAGE", package)
    before = fingerprint.numerics_fingerprint.__wrapped__()
    hashed = {f.relative_to(package).as_posix() for f in fingerprint.numeric_source_files()}
    sources = {f"training/csrc/{f.name}" for f in streamed_kernel.CSRC.iterdir()}
    assert sources <= hashed and "training/compile_cache.py" not in hashed
    cache = package / "training" / "compile_cache.py"
    cache.write_text(cache.read_text() + "\n# where the cache lives changes no number\n")
    assert fingerprint.numerics_fingerprint.__wrapped__() == before
    kernel = package / "training" / "csrc" / "streamed_step.cpp"
    kernel.write_text(kernel.read_text() + "\n// a changed kernel\n")
    assert fingerprint.numerics_fingerprint.__wrapped__() != before
    monkeypatch.setattr(streamed_kernel, "CSRC", kernel.parent)
    assert streamed_kernel.library_name("portable") != names["portable"]


def test_the_sources_ship_as_package_data():
    """pyproject.toml's package data covers every file of csrc/ (a wheel without them could not
    build the kernel)."""
    import fnmatch
    import tomllib

    pyproject = fingerprint.PACKAGE.parents[1] / "pyproject.toml"
    patterns = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["minnorm"]
    for source in streamed_kernel.CSRC.iterdir():
        path = source.relative_to(fingerprint.PACKAGE).as_posix()
        assert any(fnmatch.fnmatch(path, pattern) for pattern in patterns), path
