import math

import pytest
import torch

from helpers import reference
from minnorm.core.activations import ACTIVATIONS, get_activation
from minnorm.core.model import augment_inputs
from minnorm.core.pair_quadrature import (
    MAX_SPACING,
    SPACING_FACTOR,
    default_spacing,
    pair_expectation,
    trapezoid_rule,
)

# The trapezoid rule against the reference's piecewise Gauss-Legendre rule (200 nodes per smooth
# piece), two independent methods each accurate to rounding (~1e-15 per O(1) term) at these scales.
INDEPENDENT_RULE_ATOL = 1e-12
# The issue asks for 1e-10 against a finer rule; measured: <= 4e-15 at sigma <= 4.2 (see
# SPACING_FACTOR's comment), and 1.5e-11 at 1.5 times the default spacing, so 1e-12 still fails
# for a spacing rule that coarse. Here sigma <= 2 kappa, up to 4.
FINER_RULE_ATOL = 1e-12
SMOOTH = ["softplus", "tanh", "erf"]


def test_trapezoid_rule_integrates_gaussian_moments():
    # E[Z^2k] = (2k - 1)!!: 1, 1, 3, 15. (Cutting the nodes at |z| = 9 loses ~1e-11 of
    # E[Z^8] = 105, far beyond the integrands' growth.)
    for spacing in (MAX_SPACING, 0.2, 0.05):
        nodes, weights = trapezoid_rule(spacing)
        for k, moment in enumerate([1, 1, 3, 15]):
            assert float(weights @ nodes ** (2 * k)) == pytest.approx(moment, rel=1e-13)
        assert float(weights @ nodes**3) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="spacing must be positive"):
        trapezoid_rule(0.0)


def test_default_spacing_scales_with_the_largest_standard_deviation():
    assert default_spacing(2.0, math.pi) == pytest.approx(SPACING_FACTOR * math.pi / 2.0)
    assert default_spacing(4.0, math.pi) == pytest.approx(default_spacing(2.0, math.pi) / 2)
    assert default_spacing(1e-3, math.pi) == MAX_SPACING
    assert default_spacing(0.0, math.pi) == MAX_SPACING
    with pytest.raises(ValueError, match="analytic_half_width must be positive"):
        default_spacing(1.0, math.inf)


def hard_inputs(d=3, seed=0):
    """Augmented inputs (5, d + 1), norms 1.1 to 2: three points on spheres of radii 0.5, 1 and
    1.5, a multiple of one (correlation 1, the hardest pair for the rule) and the negative of
    another (correlation -1)."""
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(3, d, generator=gen, dtype=torch.float64)
    radii = torch.tensor([[0.5], [1.0], [1.5]], dtype=torch.float64)
    Xt = augment_inputs(X / torch.linalg.vector_norm(X, dim=1, keepdim=True) * radii, True)
    return torch.cat([Xt, 1.1 * Xt[:1], -Xt[1:2]])


@pytest.mark.parametrize("kappa", [0.5, 1.5])
@pytest.mark.parametrize("name", ["softplus", "tanh"])
def test_pair_expectation_matches_reference_gauss_legendre(name, kappa):
    spec = ACTIVATIONS[name]
    assert spec.analytic_half_width is not None
    Xt = hard_inputs()
    sigma_max = kappa * float(torch.linalg.vector_norm(Xt, dim=1).max())
    h = default_spacing(sigma_max, spec.analytic_half_width)
    act = get_activation(name)
    s, ds = reference.activation_np(name, 0.0)
    for fn_torch, fn_np in ((act.value, s), (act.derivative, ds)):
        got = pair_expectation(fn_torch, Xt, None, kappa=kappa, spacing=h)
        for i in range(len(Xt)):
            for j in range(i, len(Xt)):
                expected = reference.gaussian_pair_expectation(
                    fn_np, Xt[i].numpy(), Xt[j].numpy(), kappa
                )
                assert float(got[i, j]) == pytest.approx(expected, abs=INDEPENDENT_RULE_ATOL), (
                    i,
                    j,
                )


@pytest.mark.parametrize("name", SMOOTH)
@pytest.mark.parametrize("kappa", [0.1, 1.0, 2.0])
def test_default_spacing_is_within_tolerance_of_a_finer_rule(name, kappa):
    spec = ACTIVATIONS[name]
    assert spec.analytic_half_width is not None
    Xt = hard_inputs(seed=1)
    sigma_max = kappa * float(torch.linalg.vector_norm(Xt, dim=1).max())
    h = default_spacing(sigma_max, spec.analytic_half_width)
    act = get_activation(name)
    for fn in (act.value, act.derivative):
        coarse = pair_expectation(fn, Xt, None, kappa=kappa, spacing=h)
        fine = pair_expectation(fn, Xt, None, kappa=kappa, spacing=h / 2)
        torch.testing.assert_close(coarse, fine, rtol=0, atol=FINER_RULE_ATOL)


def test_symmetric_and_general_evaluation_agree():
    Xt = hard_inputs(seed=2)
    fn = torch.tanh
    sym = pair_expectation(fn, Xt, None, kappa=1.0, spacing=0.1)
    general = pair_expectation(fn, Xt, Xt, kappa=1.0, spacing=0.1)
    # The general call factors the pair (j, i) from its other end: rounding differs by ~1e-14.
    torch.testing.assert_close(sym, general, rtol=0, atol=1e-14)
    torch.testing.assert_close(sym, sym.T, rtol=0, atol=0)
    cross = pair_expectation(fn, Xt[:3], Xt[2:], kappa=1.0, spacing=0.1)
    torch.testing.assert_close(cross, general[:3, 2:], rtol=0, atol=1e-15)


def test_zero_input_factorises():
    """u = 0 for a zero input: E[g(0) g(v)] = g(0) E[g(v)], a 1-D expectation."""
    Xt = torch.tensor([[0.0, 0.0], [0.6, 0.8]], dtype=torch.float64)
    sigmoid = torch.sigmoid
    got = pair_expectation(sigmoid, Xt, None, kappa=2.0, spacing=0.05)
    nodes, weights = trapezoid_rule(0.05)
    one_d = float(weights @ sigmoid(2.0 * nodes))
    assert float(got[0, 1]) == pytest.approx(0.5 * one_d, abs=1e-15)
    assert float(got[0, 0]) == pytest.approx(0.25, abs=1e-15)
    assert one_d == pytest.approx(0.5, abs=1e-15)  # sigmoid(z) - 1/2 is odd
