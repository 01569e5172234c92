import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from helpers import reference
from minnorm.core.kernels import (
    activation_pattern,
    coactivation_counts,
    infinite_width_kernel,
    ntk_gram,
)
from minnorm.core.model import augment_inputs, init_weights

# float64 sums of ~m*p products of O(1) numbers; 1e-10 leaves ample room above ~1e-14 rounding.
EXACT_ATOL = 1e-10


def gram_at(Xa: torch.Tensor, Xb: torch.Tensor, W0: torch.Tensor) -> torch.Tensor:
    """ntk_gram of two augmented point sets at W0, through their activation patterns."""
    return ntk_gram(Xa, activation_pattern(Xa, W0), Xb, activation_pattern(Xb, W0))


def points(n: int, d: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    # Non-unit norms on purpose: nothing below may assume the sphere.
    return torch.randn(n, d, generator=gen, dtype=torch.float64) * 1.5


@pytest.mark.parametrize("bias", [True, False])
def test_ntk_gram_equals_explicit_jacobian_gram(bias):
    X = points(20, 4, seed=1)
    W0, a = init_weights(64, 4 + int(bias), 1.0, seed=0)
    J = reference.jacobian(W0, X, a, bias)
    Xt = augment_inputs(X, bias)
    G = gram_at(Xt, Xt, W0)
    torch.testing.assert_close(G, J @ J.T, rtol=0, atol=EXACT_ATOL)
    # Cross-kernel between two point sets.
    X_test = points(6, 4, seed=2)
    J_test = reference.jacobian(W0, X_test, a, bias)
    cross = gram_at(augment_inputs(X_test, bias), Xt, W0)
    torch.testing.assert_close(cross, J_test @ J.T, rtol=0, atol=EXACT_ATOL)


def test_activation_pattern_is_strict_like_autograd():
    X = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    # Neuron 0 sits exactly on the kink for x_0 (pre-activation 0).
    W0 = torch.tensor([[0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    S = activation_pattern(X, W0)
    assert S.tolist() == [[False, True], [True, True]]
    J = reference.jacobian(W0, X, torch.ones(2, dtype=torch.float64), False).reshape(2, 2, 2)
    active_by_autograd = J.abs().sum(dim=2) > 0
    assert torch.equal(S, active_by_autograd)


def test_infinite_width_kernel_closed_form_values():
    e1 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    at_60_degrees = torch.tensor([0.5, math.sqrt(3) / 2], dtype=torch.float64)
    X = torch.stack([e1, torch.tensor([0.0, 1.0], dtype=torch.float64), -e1, at_60_degrees, 3 * e1])
    H = infinite_width_kernel(X, X).numpy()
    assert H[0, 0] == pytest.approx(0.5, abs=1e-15)  # |x|^2 / 2: half the neurons fire
    assert H[0, 1] == pytest.approx(0.0, abs=1e-15)  # orthogonal
    assert H[0, 2] == pytest.approx(0.0, abs=1e-15)  # antipodal: never both active
    assert H[0, 3] == pytest.approx(0.5 * (math.pi - math.pi / 3) / (2 * math.pi), abs=1e-15)
    assert H[4, 3] == pytest.approx(3 * H[0, 3], abs=1e-14)  # homogeneous of degree 1 per input
    assert H[4, 4] == 4.5  # |x|^2 / 2 exactly on the diagonal
    assert torch.isfinite(infinite_width_kernel(torch.zeros(1, 2, dtype=torch.float64), X)).all()


def test_infinite_width_kernel_is_psd_and_symmetric():
    Xt = augment_inputs(points(30, 3, seed=4), True)
    H = infinite_width_kernel(Xt, Xt)
    torch.testing.assert_close(H, H.T, rtol=0, atol=1e-14)
    assert float(torch.linalg.eigvalsh(H)[0]) > 0


@pytest.mark.parametrize("bias", [True, False])
def test_empirical_gram_converges_to_infinite_width_kernel(bias):
    """Monte Carlo: G(m) - H has per-entry std <= |x_i||x_j| / (2 sqrt(m)) (Bernoulli mean)."""
    X = points(8, 3, seed=5)
    Xt = augment_inputs(X, bias)
    H = infinite_width_kernel(Xt, Xt)
    scale = float((torch.linalg.vector_norm(Xt, dim=1) ** 2).max())
    widths = [256, 1024, 4096, 16384, 65536]
    errors = []
    for m in widths:
        W0, _ = init_weights(m, 3 + int(bias), 0.3, seed=11)
        errors.append(float((gram_at(Xt, Xt, W0) - H).abs().max()))
    for m, err in zip(widths, errors, strict=True):
        # 5 standard deviations of the worst entry: 36 distinct entries, fixed seeds.
        assert err <= 5 * scale / (2 * math.sqrt(m)), (m, err)
    slope = np.polyfit(np.log(widths), np.log(errors), 1)[0]
    assert -0.8 < slope < -0.25, slope
    assert errors[-1] < errors[0] / 4


def test_coactivation_counts_are_exact_integers():
    gen = torch.Generator().manual_seed(9)
    Sa = torch.rand(7, 3000, generator=gen) > 0.3
    Sb = torch.rand(5, 3000, generator=gen) > 0.6
    counts = coactivation_counts(Sa, Sb)
    expected = (Sa[:, None, :] & Sb[None, :, :]).sum(dim=2).to(torch.float64)
    assert counts.dtype == torch.float64
    assert torch.equal(counts, expected)


# ---- H against an extended-precision reference (mpmath, 50 digits) ----

# Where the angle is at least ANGLE_MARGIN from 0 and pi: relative error at most RELATIVE_TOL;
# closer to 0 or pi (H near |x_a||x_b| / 2 or near 0) absolute error at most
# ABSOLUTE_TOL |x_a||x_b|, about one unit in the last place of |x_a||x_b| / 2.
ANGLE_MARGIN = 1e-3
RELATIVE_TOL = 1e-14
ABSOLUTE_TOL = 2e-16


def mpmath_kernel(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(H, angle, |a||b|) of two float64 vectors, computed in 50-digit arithmetic from the exact
    values of their entries."""
    import mpmath

    with mpmath.workdps(50):
        xa = [mpmath.mpf(float(v)) for v in a]
        xb = [mpmath.mpf(float(v)) for v in b]
        dot = mpmath.fsum(u * v for u, v in zip(xa, xb, strict=True))
        norms = mpmath.sqrt(mpmath.fsum(u * u for u in xa)) * mpmath.sqrt(
            mpmath.fsum(v * v for v in xb)
        )
        if norms == 0:
            return 0.0, float(mpmath.pi / 2), 0.0
        cosine = max(min(dot / norms, mpmath.mpf(1)), mpmath.mpf(-1))
        angle = mpmath.acos(cosine)
        return float(dot * (mpmath.pi - angle) / (2 * mpmath.pi)), float(angle), float(norms)


def rotated(a: np.ndarray, angle: float, gen: np.random.Generator, scale: float) -> np.ndarray:
    """A vector of norm scale |a| at `angle` from a (in a random plane containing a)."""
    u = a / np.linalg.norm(a)
    w = gen.standard_normal(a.size)
    w -= (w @ u) * u
    w /= np.linalg.norm(w)
    return scale * np.linalg.norm(a) * (np.cos(angle) * u + np.sin(angle) * w)


def hard_points(p: int, seed: int) -> np.ndarray:
    """Rows that stress H: random points of varied norms, identical copies, points at 1e-6 and
    1e-3 from parallel and from opposite, orthogonal pairs, and a zero row."""
    gen = np.random.default_rng(seed)
    base = gen.standard_normal((6, p)) * gen.uniform(0.2, 3.0, size=(6, 1))
    rows = [*base, base[0].copy(), base[1] * 1.0]
    for angle in (1e-6, 1e-3, 0.5, np.pi / 2, np.pi - 1e-3, np.pi - 1e-6):
        rows.append(rotated(base[0], angle, gen, gen.uniform(0.5, 2.0)))
        rows.append(rotated(base[2], angle, gen, 1.0))
    rows.append(np.zeros(p))
    return np.array(rows)


@pytest.mark.parametrize("p", [2, 6, 65])
def test_infinite_width_kernel_against_mpmath(p):
    X = hard_points(p, seed=p)
    H = infinite_width_kernel(torch.from_numpy(X), torch.from_numpy(X)).numpy()
    worst_rel = worst_abs = 0.0
    for i in range(len(X)):
        for j in range(len(X)):
            ref, angle, norms = mpmath_kernel(X[i], X[j])
            err = abs(H[i, j] - ref)
            if ANGLE_MARGIN <= angle <= np.pi - ANGLE_MARGIN:
                assert err <= RELATIVE_TOL * abs(ref) + 1e-300, (i, j, angle, H[i, j], ref)
                worst_rel = max(worst_rel, err / abs(ref) if ref else 0.0)
            else:
                assert err <= ABSOLUTE_TOL * norms, (i, j, angle, H[i, j], ref)
                worst_abs = max(worst_abs, err / norms if norms else 0.0)
    # The test points reach both regimes.
    assert worst_rel > 0 and worst_abs >= 0


def test_infinite_width_kernel_diagonal_is_exactly_half_the_squared_norm():
    X = torch.from_numpy(hard_points(7, seed=3)[:-1])
    H = infinite_width_kernel(X, X)
    # Exactly (x . x) / 2 with x . x rounded from its exact value (Fractions hold it exactly).
    for i in range(X.shape[0]):
        exact = sum(Fraction(float(v)) ** 2 for v in X[i])
        assert float(H[i, i]) == float(exact) / 2
    # The same point in two different matrices (a test point equal to a train point) too.
    cross = infinite_width_kernel(X[:3].clone(), X)
    assert torch.equal(torch.diagonal(cross[:, :3]), torch.diagonal(H[:3, :3]))
