import math

import numpy as np
import pytest
import torch

from helpers import reference
from minnorm.core.activations import ACTIVATIONS, get_activation
from minnorm.core.closed_form_kernels import arc_cosine_degree1
from minnorm.core.family_network import empirical_ntk_gram
from minnorm.core.kernels import infinite_width_kernel
from minnorm.core.limit_kernels import (
    gradient_term,
    limit_kernel,
    limit_kernel_regression,
    output_term,
)
from minnorm.core.model import augment_inputs
from minnorm.core.theory import kernel_regression_predict

# Closed forms against the reference's piecewise Gauss-Legendre quadrature: both exact to
# rounding on O(1) entries.
INDEPENDENT_RULE_ATOL = 1e-12
# infinite_width_kernel evaluates arccos at cosines rounded to within ~1e-16 of 1 on its
# diagonal, where arccos(1 - e) ~ sqrt(2 e) ~ 1e-8: its diagonal is good to ~1e-8 only
# (tests/core/test_kernels.py; another change makes it exact). The relu and leaky relu gradient
# terms call it, so their diagonals get this tolerance (scaled by |x|^2 <= 4 here).
ARCCOS_DIAGONAL_ATOL = 1e-7
# Monte Carlo G at m = 10^6 against H: every entry within this many of its standard errors
# (10 families x 10 entries x 2 data draws = 200 comparisons: P(any beyond 4.5) ~ 1e-3 for
# Gaussian errors, and the seeds are fixed).
MC_SIGMAS = 4.5
MC_WIDTH = 10**6
LEAK = 0.1
FAMILIES = [(name, train) for name in ACTIVATIONS for train in (False, True)]
FAMILY_IDS = [f"{name}-{'trained' if train else 'fixed'}" for name, train in FAMILIES]


def inputs(n=4, d=3, seed=0, unit=False):
    """Augmented inputs (n, d + 1): on the unit sphere (as the pipeline's data) or with norms
    spread between 0.3 and 1.7, plus a bias coordinate."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64)
    X = X / torch.linalg.vector_norm(X, dim=1, keepdim=True)
    if not unit:
        X = X * torch.linspace(0.3, 1.7, n, dtype=torch.float64)[:, None]
    return augment_inputs(X, True)


def test_relu_with_fixed_output_is_infinite_width_kernel_bit_for_bit():
    Xa, Xb = inputs(n=12, seed=1), inputs(n=5, seed=2)
    for kappa in (0.01, 1.0, 3.0):
        for other in (None, Xb):
            H = limit_kernel(Xa, other, get_activation("relu"), kappa=kappa, train_output=False)
            assert torch.equal(H, infinite_width_kernel(Xa, Xa if other is None else other))


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "erf"])
@pytest.mark.parametrize("kappa", [0.3, 1.0, 2.0])
def test_closed_forms_against_reference_quadrature(name, kappa):
    act = get_activation(name, leak=LEAK)
    s, ds = reference.activation_np(name, LEAK)
    Xt = inputs(n=4, seed=3)
    HW = gradient_term(Xt, None, act, kappa=kappa)
    Ha = output_term(Xt, None, act, kappa=kappa)
    for i in range(len(Xt)):
        for j in range(i, len(Xt)):
            xi, xj = Xt[i].numpy(), Xt[j].numpy()
            expected_W = float(xi @ xj) * reference.gaussian_pair_expectation(ds, xi, xj, kappa)
            expected_a = reference.gaussian_pair_expectation(s, xi, xj, kappa)
            tol = ARCCOS_DIAGONAL_ATOL if (i == j and name != "erf") else INDEPENDENT_RULE_ATOL
            assert float(HW[i, j]) == pytest.approx(expected_W, abs=tol), (i, j)
            assert float(Ha[i, j]) == pytest.approx(expected_a, abs=INDEPENDENT_RULE_ATOL), (i, j)


@pytest.mark.parametrize("kappa", [0.1, 1.0, 2.0])
def test_erf_closed_forms_against_the_trapezoid_rule(kappa):
    act = get_activation("erf")
    Xa, Xb = inputs(n=6, seed=4), inputs(n=3, seed=5, unit=True)
    for term in (gradient_term, output_term):
        for other in (None, Xb):
            closed = term(Xa, other, act, kappa=kappa)
            quadrature = term(Xa, other, act, kappa=kappa, quadrature=True)
            torch.testing.assert_close(closed, quadrature, rtol=0, atol=1e-13)


def test_quadrature_is_refused_for_activations_with_a_kink():
    with pytest.raises(ValueError, match="'leaky_relu' is not smooth"):
        gradient_term(inputs(), None, get_activation("leaky_relu"), kappa=1.0, quadrature=True)


def test_relu_output_kernel_at_known_angles():
    """E[relu(u) relu(v)] = kappa^2 |x||x'| (sin t + (pi - t) cos t) / (2 pi) (Cho & Saul 2009)."""
    e1 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    at_60 = torch.tensor([0.5, math.sqrt(3) / 2], dtype=torch.float64)
    X = torch.stack([e1, torch.tensor([0.0, 1.0], dtype=torch.float64), -e1, at_60, 3 * e1])
    kappa = 0.7
    Ha = output_term(X, None, get_activation("relu"), kappa=kappa).numpy() / kappa**2
    assert Ha[0, 0] == pytest.approx(0.5, abs=1e-16)  # E[relu(z)^2] = 1/2
    assert Ha[0, 1] == pytest.approx(1 / (2 * math.pi), abs=1e-16)  # independent: (1/sqrt(2pi))^2
    assert Ha[0, 2] == pytest.approx(0.0, abs=1e-16)  # never both positive
    t = math.pi / 3
    expected_60 = (math.sin(t) + (math.pi - t) * math.cos(t)) / (2 * math.pi)
    assert Ha[0, 3] == pytest.approx(expected_60, abs=1e-16)
    assert Ha[4, 4] == pytest.approx(4.5, abs=1e-14)  # exact on the diagonal, unlike arccos alone
    assert arc_cosine_degree1(X[:1] * 0, X).abs().max() == 0  # a zero input gives a zero row


@pytest.mark.parametrize("kappa", [0.2, 1.5])
def test_leaky_relu_limits(kappa):
    Xa, Xb = inputs(n=5, seed=6), inputs(n=3, seed=7)
    relu = get_activation("relu")
    at_zero = get_activation("leaky_relu", leak=0.0)
    for term in (gradient_term, output_term):
        assert torch.equal(term(Xa, Xb, at_zero, kappa=kappa), term(Xa, Xb, relu, kappa=kappa))
    linear = get_activation("leaky_relu", leak=1.0)
    dots = Xa @ Xb.T
    torch.testing.assert_close(gradient_term(Xa, Xb, linear, kappa=kappa), dots, rtol=0, atol=0)
    torch.testing.assert_close(
        output_term(Xa, Xb, linear, kappa=kappa), kappa**2 * dots, rtol=1e-15, atol=0
    )


def test_small_kappa_limits_are_the_linearised_activations():
    """For kappa -> 0, s(z) = s(0) + s'(0) z + s''(0) z^2 / 2 + O(z^3): H_W -> s'(0)^2 (x . x')
    and, for s(0) = 0, H_a / kappa^2 -> s'(0)^2 (x . x'), both with errors O(kappa^2) (the
    error falls 100-fold when kappa falls 10-fold); for softplus (s(0) = ln 2, s''(0) = 1/4)
    H_a = ln(2)^2 + kappa^2 [ln(2) (|x|^2 + |x'|^2) / 8 + (x . x') / 4] + O(kappa^4)."""
    Xa = inputs(n=5, seed=8)
    dots = Xa @ Xa.T
    sq = torch.sum(Xa * Xa, dim=1)
    for name, s0, ds0 in (
        ("tanh", 0.0, 1.0),
        ("erf", 0.0, 2 / math.sqrt(math.pi)),
        ("softplus", math.log(2), 0.5),
    ):
        act = get_activation(name)
        # Largest error of each first-order limit at kappa = 1e-2 and 1e-3.
        errors: dict[str, list[float]] = {"H_W": [], "H_a": []}
        for kappa in (1e-2, 1e-3):
            HW = gradient_term(Xa, None, act, kappa=kappa)
            errors["H_W"].append(float((HW - ds0**2 * dots).abs().max()))
            Ha = output_term(Xa, None, act, kappa=kappa)
            if s0 == 0.0:
                errors["H_a"].append(float((Ha / kappa**2 - ds0**2 * dots).abs().max()))
            else:
                second_order = math.log(2) * (sq[:, None] + sq[None, :]) / 8 + dots / 4
                expected = s0**2 + kappa**2 * second_order
                torch.testing.assert_close(Ha, expected, rtol=0, atol=100 * kappa**4)
        for term, (coarse, fine) in ((k, v) for k, v in errors.items() if v):
            assert fine < 1e-4 and 80 < coarse / fine < 120, (name, term, coarse, fine)


def test_softplus_approaches_relu_for_large_kappa():
    """|E[sigma(u) sigma(v)] - P(u > 0, v > 0)| <= E|sigma(u) - 1{u > 0}| + E|sigma(v) - 1{v>0}|
    <= 2 ln 2 (1 / s_u + 1 / s_v) / sqrt(2 pi), since int |sigma - step| = 2 ln 2 and the density
    of u is at most 1 / (s_u sqrt(2 pi)); the bound shrinks like 1 / kappa."""
    Xt = inputs(n=4, seed=9, unit=True)
    norms = torch.linalg.vector_norm(Xt, dim=1)
    relu, softplus = get_activation("relu"), get_activation("softplus")
    dots = Xt @ Xt.T
    gaps = []
    for kappa in (4.0, 16.0):
        sigma = kappa * norms
        bound = 2 * math.log(2) * (1 / sigma[:, None] + 1 / sigma[None, :]) / math.sqrt(2 * math.pi)
        gap = (
            gradient_term(Xt, None, softplus, kappa=kappa)
            - gradient_term(Xt, None, relu, kappa=kappa)
        ) / dots
        assert bool((gap.abs() <= bound).all()), kappa
        gaps.append(float(gap.abs().max()))
    assert gaps[1] < gaps[0] / 2


def monte_carlo_gram(Xt, activation, *, kappa, train_output, seed):
    """G at MC_WIDTH neurons drawn w ~ N(0, kappa^2 I), a = +-1, and the standard error of each
    entry (the sample standard deviation of the per-neuron terms over sqrt(m)): (n, n) each."""
    gen = torch.Generator().manual_seed(seed)
    n, m = len(Xt), MC_WIDTH
    dots = Xt @ Xt.T
    first, second = torch.zeros(n, n, dtype=torch.float64), torch.zeros(n, n, dtype=torch.float64)
    for _ in range(4):  # four blocks keep the (n, m) tensors at 12 MiB
        W = kappa * torch.randn(m // 4, Xt.shape[1], generator=gen, dtype=torch.float64)
        a = torch.where(torch.rand(m // 4, generator=gen) < 0.5, -1.0, 1.0).to(torch.float64)
        Z = Xt @ W.T
        first += empirical_ntk_gram(Xt, Z, Xt, Z, a, activation, train_output=train_output) / 4
        D, S = activation.derivative(Z), activation.value(Z)
        # Second moment of the per-neuron term dots * s'_i s'_j + [train_output] s_i s_j.
        block = dots**2 * ((D * D) @ (D * D).T)
        if train_output:
            block += 2 * dots * ((D * S) @ (D * S).T) + (S * S) @ (S * S).T
        second += block / m
    return first, torch.sqrt(torch.clamp(second - first**2, min=0.0) / m)


@pytest.mark.parametrize("name,train_output", FAMILIES, ids=FAMILY_IDS)
def test_monte_carlo_gram_at_a_million_neurons_is_within_its_standard_error(name, train_output):
    act = get_activation(name, leak=LEAK)
    for seed, (Xt, kappa) in enumerate([(inputs(unit=True), 1.0), (inputs(seed=11), 0.6)]):
        H = limit_kernel(Xt, None, act, kappa=kappa, train_output=train_output)
        G, se = monte_carlo_gram(Xt, act, kappa=kappa, train_output=train_output, seed=seed)
        assert float(se.max()) < 5e-3  # the test resolves H to a few 1e-3 at this width
        z = (G - H).abs() / se
        assert float(z.max()) < MC_SIGMAS, (name, train_output, float(z.max()))
        if name not in ("relu", "leaky_relu") or train_output:
            # The same comparison refuses H at another kappa (H_W of the 1-homogeneous
            # activations does not depend on kappa).
            H_wrong = limit_kernel(Xt, None, act, kappa=1.2 * kappa, train_output=train_output)
            assert float(((G - H_wrong).abs() / se).max()) > MC_SIGMAS


@pytest.mark.parametrize("name,train_output", FAMILIES, ids=FAMILY_IDS)
def test_limit_kernel_regression_interpolates_and_uses_the_limit_kernel(name, train_output):
    act = get_activation(name, leak=LEAK)
    Xt_train, Xt_test = inputs(n=6, seed=12, unit=True), inputs(n=3, seed=13, unit=True)
    y = torch.linspace(-1.0, 1.0, 6, dtype=torch.float64)
    kw = dict(kappa=1.0, train_output=train_output)
    at_train = limit_kernel_regression(Xt_train, Xt_train, y, act, **kw)
    torch.testing.assert_close(at_train, y, rtol=0, atol=1e-10)
    H_train = limit_kernel(Xt_train, None, act, **kw).numpy()
    H_test = limit_kernel(Xt_test, Xt_train, act, **kw).numpy()
    expected = H_test @ np.linalg.solve(H_train, y.numpy())
    got = limit_kernel_regression(Xt_test, Xt_train, y, act, **kw)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-10)
    if name == "relu" and not train_output:
        old = kernel_regression_predict(
            infinite_width_kernel(Xt_test, Xt_train), infinite_width_kernel(Xt_train, Xt_train), y
        )
        assert torch.equal(got, old)
