"""The C++ kernel of the issue-29 networks (``minnorm.training.family_kernel``): its gradients and
loss against autograd of the network written with torch's own activation functions (an
independent reference), at shapes that exercise every tail of its loops, in the tails of the
activations and at z = 0; NaN propagation; its selection by the family step and the fallback;
its validation; and the naming of its library. Its iterates over many steps are checked against
the NumPy GD loop in test_family_training.py."""

from __future__ import annotations

import logging
import shutil

import pytest
import torch
from torch.nn import functional

from minnorm.core.activations import get_activation
from minnorm.core.family_network import TwoLayerNet
from minnorm.training import family_kernel, family_step, streamed_kernel
from minnorm.training.family_kernel import FamilyKernel
from minnorm.training.family_step import FamilyStep
from minnorm.training.gradient_formulas import STREAMED_MAX_P

NEEDS_AVX512 = pytest.mark.skipif(
    streamed_kernel.cpu_isa() != family_kernel.ISA,
    reason="the family kernel is built for AVX-512 CPUs only",
)
ACTIVATIONS = ("softplus", "tanh", "erf", "relu", "leaky_relu")
LEAK = 0.1
# Float64 sums over n points and m neurons in another order and with fused multiply-adds; the
# largest relative error seen at these shapes is 1.5e-15.
RTOL = 1e-13
# (n, m, p): one point and neuron; n odd, m not a multiple of 8, 16 or 256; a whole block; three
# blocks and a tail with the largest p; the papers' sizes.
SHAPES = [(1, 1, 1), (7, 37, 3), (8, 256, 6), (9, 3 * 256 + 5, STREAMED_MAX_P), (100, 1000, 6)]


def _reference_activation(name: str):
    """s from torch's own functions, not the registry's exp/expm1 forms."""
    return {
        "softplus": lambda z: torch.logaddexp(z, torch.zeros_like(z)),
        "tanh": torch.tanh,
        "erf": torch.erf,
        "relu": torch.relu,
        "leaky_relu": lambda z: functional.leaky_relu(z, LEAK),
    }[name]


def _problem(n: int, m: int, p: int, *, spread: float = 1.0, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    Xt = torch.randn(n, p, generator=gen, dtype=torch.float64)
    Wt = spread * torch.randn(p, m, generator=gen, dtype=torch.float64)
    a = torch.randint(0, 2, (m,), generator=gen, dtype=torch.float64) * 2 - 1
    y = torch.randn(n, generator=gen, dtype=torch.float64)
    return Wt, a, Xt, y


def _reference(name: str, Wt, a, Xt, y, scale: float):
    """(dL/dW (m, p), dL/da (m,), L) by autograd of L = scale / 2 sum_i (f_i - y_i)^2."""
    s = _reference_activation(name)
    m = Wt.shape[1]

    def loss(W, a):
        f = s(Xt @ W.mT) @ a / m**0.5
        return 0.5 * scale * torch.sum((f - y) ** 2)

    W = Wt.mT.clone()
    grad_W, grad_a = torch.func.grad(loss, argnums=(0, 1))(W, a.clone())
    return grad_W, grad_a, loss(W, a)


def _close(x: torch.Tensor | None, ref: torch.Tensor) -> bool:
    """||x - ref|| <= RTOL ||ref|| (exactly equal where ref is 0)."""
    assert x is not None
    return bool(torch.linalg.vector_norm(x - ref) <= RTOL * torch.linalg.vector_norm(ref))


@NEEDS_AVX512
@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("trained", [False, True])
@pytest.mark.parametrize(("n", "m", "p"), SHAPES)
def test_the_gradients_and_loss_equal_autograd(name, trained, n, m, p) -> None:
    Wt, a, Xt, y = _problem(n, m, p)
    scale = 1.0 / n
    kernel = FamilyKernel(name, p, train_output=trained, leak=LEAK)
    grad_W, grad_a, loss = kernel(Wt, a, Xt, y, scale)
    ref_W, ref_a, ref_loss = _reference(name, Wt, a, Xt, y, scale)
    assert grad_W.shape == (m, p) and loss.shape == ()
    assert _close(grad_W, ref_W)
    assert float(loss) == pytest.approx(float(ref_loss), rel=RTOL)
    if trained:
        assert _close(grad_a, ref_a)
    else:
        assert grad_a is None


@NEEDS_AVX512
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_the_tails_and_zero_preactivations(name) -> None:
    """Preactivations up to |z| ~ 300 (the smooth functions at their limits: s' underflows to 0,
    tanh and erf reach +-1, softplus z) and a point at the origin with no bias column, where every
    z_ir = 0 (relu'(0) = 0, leaky_relu'(0) = leak, as autograd has them)."""
    Wt, a, Xt, y = _problem(11, 300, 4, spread=60.0, seed=1)
    Xt[3] = 0.0
    for trained in (False, True):
        kernel = FamilyKernel(name, 4, train_output=trained, leak=LEAK)
        grad_W, grad_a, loss = kernel(Wt, a, Xt, y, 1.0)
        ref_W, ref_a, ref_loss = _reference(name, Wt, a, Xt, y, 1.0)
        assert torch.isfinite(grad_W).all() and torch.isfinite(loss)
        assert _close(grad_W, ref_W)
        assert float(loss) == pytest.approx(float(ref_loss), rel=RTOL)
        if trained:
            assert _close(grad_a, ref_a)


@NEEDS_AVX512
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_a_nan_weight_makes_the_loss_nan(name) -> None:
    """A diverged run is caught by its loss: one NaN weight reaches L (and its neuron's
    gradient)."""
    Wt, a, Xt, y = _problem(6, 40, 3)
    Wt[1, 17] = float("nan")
    grad_W, _, loss = FamilyKernel(name, 3, train_output=True, leak=LEAK)(Wt, a, Xt, y, 1.0)
    assert torch.isnan(loss) and torch.isnan(grad_W[17]).all()


def test_bad_arguments_are_refused_with_their_reason() -> None:
    with pytest.raises(ValueError, match="evaluates softplus, tanh, erf, leaky_relu, relu"):
        FamilyKernel("gelu", 4, train_output=False)
    with pytest.raises(ValueError, match=f"1 <= p <= {STREAMED_MAX_P}, got 13"):
        FamilyKernel("tanh", STREAMED_MAX_P + 1, train_output=False)


@NEEDS_AVX512
def test_mismatched_shapes_are_refused() -> None:
    Wt, a, Xt, y = _problem(5, 20, 3)
    kernel = FamilyKernel("erf", 3, train_output=False)
    with pytest.raises(ValueError, match=r"shapes do not match \(p = 3\)"):
        kernel(Wt, a[:-1], Xt, y, 1.0)
    with pytest.raises(ValueError, match=r"shapes do not match \(p = 3\)"):
        kernel(Wt, a, Xt[:, :2].contiguous(), y, 1.0)


def test_buffers_are_sized_per_activation() -> None:
    """s' (and s when a is trained) as doubles for the smooth activations; only the pattern, one
    bit per point and neuron, for relu and leaky_relu; past MAX_BUFFER_BYTES the kernel is not
    offered."""
    assert family_kernel.buffer_doubles("tanh", 100, 10_000, False) == (100 * 10_240, 0)
    assert family_kernel.buffer_doubles("erf", 3, 1, True) == (768, 768)
    assert family_kernel.buffer_doubles("leaky_relu", 100, 10_000, True) == (16_000, 0)
    assert family_kernel.supports("softplus", 100, 10_000, 6, True)
    assert not family_kernel.supports("softplus", 2**12, 2**14, 6, False)  # 512 MiB
    assert family_kernel.supports("relu", 2**12, 2**14, 6, True)  # 8 MiB of bits
    assert not family_kernel.supports("gelu", 10, 10, 6, False)
    assert not family_kernel.supports("tanh", 10, 10, STREAMED_MAX_P + 1, False)


def _family_step(name: str, trained: bool, **kwargs) -> FamilyStep:
    Wt, a, Xt, y = _problem(10, 50, 4)
    model = TwoLayerNet(
        Wt.mT.clone(), a, True, get_activation(name, leak=LEAK), train_output=trained
    )
    X = kwargs.pop("X", Xt[:, :3].contiguous())
    return FamilyStep(model, X, y.to(X.dtype), "half_sum", **kwargs)


@NEEDS_AVX512
def test_the_family_step_takes_the_kernel_only_where_it_applies(monkeypatch) -> None:
    """A training job (float64, one thread, AVX-512) gets the kernel; several threads, another
    instruction set, float32, eager, or buffers past the limit get the formula."""
    assert _family_step("erf", True, compiled=True, threads=1).name == "cpp-family-avx512"
    assert _family_step("relu", True, compiled=True, threads=1).name == "cpp-family-avx512"
    compiled = "compiled-family-streamed"
    assert _family_step("erf", True, compiled=True, threads=2).name == compiled
    assert _family_step("tanh", False, compiled=True, threads=1, isa="avx2").name == compiled
    X32 = torch.randn(10, 3, dtype=torch.float32)
    assert _family_step("tanh", False, compiled=True, threads=1, X=X32).name == compiled
    assert _family_step("tanh", False, compiled=False, threads=1).name == "eager-family"
    monkeypatch.setattr(family_kernel, "MAX_BUFFER_BYTES", 8 * 10 * 256 - 1)
    assert _family_step("tanh", False, compiled=True, threads=1).name == compiled


@NEEDS_AVX512
def test_the_family_step_with_the_kernel_matches_the_formula() -> None:
    """The step's (dL/dW, L) and dL/da (left in model.a.grad) from the kernel against the plain
    formula on the same model."""
    kernel = _family_step("softplus", True, compiled=True, threads=1)
    plain = _family_step("softplus", True, compiled=False)
    grad_k, loss_k = kernel(kernel.model.W)
    grad_a_k = kernel.model.a.grad
    grad_p, loss_p = plain(plain.model.W)
    assert _close(grad_k, grad_p) and _close(grad_a_k, plain.model.a.grad)
    assert float(loss_k) == pytest.approx(float(loss_p), rel=RTOL)


def test_a_kernel_that_cannot_be_loaded_falls_back_with_one_warning(monkeypatch, caplog) -> None:
    def broken(*args, **kwargs):
        raise streamed_kernel.KernelUnavailable("building minnorm_family_x failed: boom")

    monkeypatch.setattr(family_kernel, "FamilyKernel", broken)
    monkeypatch.setattr(family_step, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="minnorm.training.family_step"):
        first = _family_step("tanh", False, compiled=True, threads=1, isa="avx512")
        second = _family_step("erf", True, compiled=True, threads=1, isa="avx512")
    assert first.name == second.name == "compiled-family-streamed"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "the C++ family kernel cannot be used (building minnorm_family_x failed: boom); the GD "
        "steps are compiled-family-streamed instead"
    ]


def test_each_kernel_library_is_named_by_its_own_sources(tmp_path, monkeypatch) -> None:
    """Editing the family kernel names a new family library and leaves the relu kernel's name
    (and so its build) as it was; the two never share a name."""
    family = streamed_kernel.library_name("avx512", "family")
    relu = streamed_kernel.library_name("avx512")
    assert family.startswith("minnorm_family_avx512_") and relu.startswith("minnorm_streamed_")
    csrc = tmp_path / "csrc"
    shutil.copytree(streamed_kernel.CSRC, csrc)
    monkeypatch.setattr(streamed_kernel, "CSRC", csrc)
    assert streamed_kernel.library_name("avx512", "family") == family
    source = csrc / "family_kernel.cpp"
    source.write_text(source.read_text() + "\n// a changed kernel\n")
    assert streamed_kernel.library_name("avx512", "family") != family
    assert streamed_kernel.library_name("avx512") == relu
    with pytest.raises(ValueError, match="kernel must be one of"):
        streamed_kernel.load_op("avx512", "gelu")
