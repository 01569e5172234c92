import math

import pytest
import torch
from torch.func import functional_call, jvp

from helpers import reference
from minnorm.core.model import TwoLayerReLU, augment_inputs, init_weights
from minnorm.core.target import (
    DEFAULT_RTOL,
    SingularGramWarning,
    min_norm_target,
    solve_psd,
)

# Agreement of two float64 computations of the same O(1) quantity through n x n solves with
# cond(G) ~ 1e2-1e3: rounding ~1e-13, so 1e-10 is tight yet safe.
EXACT_ATOL = 1e-10
# The interpolation tolerance for f_L(x_i; W*) = y_i.
INTERPOLATION_ATOL = 1e-8


def setup_problem(n=12, d=3, m=48, bias=True, seed=0):
    gen = torch.Generator().manual_seed(100 + seed)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = torch.randn(n, generator=gen, dtype=torch.float64)
    net = TwoLayerReLU(*init_weights(m, d + int(bias), 1.0, seed=seed), bias=bias)
    return X, y, net


def explicit_jacobian(net, X):
    """J0^T: (n, m p) at the module's current weights, from the independent reference."""
    return reference.jacobian(net.W.detach(), X, net.a, net.bias)


def target_for(X, y, net):
    return min_norm_target(augment_inputs(X, net.bias), y, net.W.detach(), net.a)


@pytest.mark.parametrize("bias", [True, False])
def test_w_star_interpolates_and_equals_pinv_solution(bias):
    X, y, net = setup_problem(bias=bias)
    t = target_for(X, y, net)
    J = explicit_jacobian(net, X)
    f0 = net(X).detach()
    torch.testing.assert_close(t.f0, f0, rtol=0, atol=EXACT_ATOL)
    torch.testing.assert_close(t.G, J @ J.T, rtol=0, atol=EXACT_ATOL)
    delta = (t.W_star - t.W0).reshape(-1)
    torch.testing.assert_close(f0 + J @ delta, y, rtol=0, atol=INTERPOLATION_ATOL)
    torch.testing.assert_close(
        t.linearized_predict(t.Xt, t.W_star), y, rtol=0, atol=INTERPOLATION_ATOL
    )
    expected = torch.linalg.pinv(J) @ (y - f0)
    torch.testing.assert_close(delta, expected, rtol=0, atol=EXACT_ATOL)
    assert t.target_norm == pytest.approx(math.sqrt(t.yGy), rel=1e-12)
    assert not t.info.used_pinv


def test_null_space_directions_only_increase_the_distance():
    X, y, net = setup_problem()
    t = target_for(X, y, net)
    J = explicit_jacobian(net, X)
    gen = torch.Generator().manual_seed(7)
    base_sq = t.target_norm**2
    for _ in range(5):
        V = torch.randn(J.shape[1], generator=gen, dtype=torch.float64)
        # Remove the row-space component: V_null is in the null space of J0^T.
        V_null = V - J.T @ torch.linalg.solve(J @ J.T, J @ V)
        assert float((J @ V_null).abs().max()) < EXACT_ATOL
        W = t.W_star + 0.1 * V_null.reshape(t.W0.shape)
        torch.testing.assert_close(
            t.linearized_predict(t.Xt, W), y, rtol=0, atol=INTERPOLATION_ATOL
        )
        moved_sq = float(torch.sum((W - t.W0) ** 2))
        assert moved_sq > base_sq
        # Pythagoras: W* - W0 lies in col(J0), orthogonal to every null direction.
        assert moved_sq == pytest.approx(base_sq + 0.01 * float(V_null @ V_null), rel=1e-10)


def test_jvp_matches_explicit_jacobian():
    X, y, net = setup_problem(bias=False)
    t = target_for(X, y, net)
    J = explicit_jacobian(net, X)
    gen = torch.Generator().manual_seed(3)
    V = torch.randn(t.W0.shape, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(t.jvp(V), J @ V.reshape(-1), rtol=0, atol=EXACT_ATOL)


def test_projection_norms_against_explicit_projector():
    X, y, net = setup_problem()
    t = target_for(X, y, net)
    J = explicit_jacobian(net, X)
    P0 = J.T @ torch.linalg.solve(J @ J.T, J)  # (mp, mp) projection onto col(J0)
    gen = torch.Generator().manual_seed(4)
    V = torch.randn(t.W0.shape, generator=gen, dtype=torch.float64)
    norm_range, norm_perp = t.projection_norms(V)
    v = V.reshape(-1)
    assert norm_range == pytest.approx(float(torch.linalg.vector_norm(P0 @ v)), rel=1e-10)
    assert norm_perp == pytest.approx(float(torch.linalg.vector_norm(v - P0 @ v)), rel=1e-10)
    assert norm_range**2 + norm_perp**2 == pytest.approx(float(v @ v), rel=1e-12)
    # A vector in col(J0) is its own projection.
    in_range = (J.T @ torch.randn(len(y), generator=gen, dtype=torch.float64)).reshape(t.W0.shape)
    r, p = t.projection_norms(in_range)
    assert r == pytest.approx(float(torch.linalg.vector_norm(in_range)), rel=1e-10)
    assert p < 1e-12 * r  # rounding only: the residual V - J0 G^-1 J0^T V, taken directly
    # The target's own displacement lies in col(J0) as well.
    assert t.projection_norms(t.W_star - t.W0)[0] == pytest.approx(t.target_norm, rel=1e-10)


# torch 2.13's forward-mode AD scripts its decompositions with the deprecated torch.jit.script
# the first time it runs; nothing we can change from here.
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("bias", [True, False])
def test_linearized_predict_matches_forward_mode_linearisation(bias):
    X, y, net = setup_problem(bias=bias)
    t = target_for(X, y, net)
    gen = torch.Generator().manual_seed(5)
    X_new = torch.randn(9, 3, generator=gen, dtype=torch.float64)
    W = t.W0 + 0.3 * torch.randn(t.W0.shape, generator=gen, dtype=torch.float64)
    f0_new, tangent = jvp(
        lambda W_: functional_call(net, {"W": W_}, (X_new,)), (t.W0,), (W - t.W0,)
    )
    expected = f0_new + tangent
    got = t.linearized_predict(augment_inputs(X_new, bias), W)
    torch.testing.assert_close(got, expected, rtol=0, atol=EXACT_ATOL)
    # At W0 the linearisation is the network itself.
    torch.testing.assert_close(
        t.linearized_predict(augment_inputs(X_new, bias), t.W0), f0_new, rtol=0, atol=EXACT_ATOL
    )


def test_duplicate_input_falls_back_to_least_squares_with_warning():
    X, y, net = setup_problem()
    X = torch.cat([X, X[:1]])
    y = torch.cat([y, y[:1] + 0.5])  # inconsistent labels for the duplicate: no exact solution
    with pytest.warns(SingularGramWarning, match=r"lambda_min = .*condition number"):
        t = target_for(X, y, net)
    assert t.info.used_pinv
    assert t.info.lambda_min < DEFAULT_RTOL * t.info.lambda_max
    assert torch.isfinite(t.W_star).all()
    J = explicit_jacobian(net, X)
    f0 = net(X).detach()
    expected = torch.linalg.pinv(J, rtol=DEFAULT_RTOL) @ (y - f0)
    torch.testing.assert_close((t.W_star - t.W0).reshape(-1), expected, rtol=0, atol=1e-9)
    # Least-squares optimality: the residual is orthogonal to col(J0^T), i.e. J0 r = 0.
    residual = t.linearized_predict(t.Xt, t.W_star) - y
    assert float((J.T @ residual).abs().max()) < 1e-9
    # The duplicated pair is fitted to the mean of its two labels; the rest exactly.
    assert float(residual[0]) == pytest.approx(0.25, abs=1e-8)
    assert float(residual[1:-1].abs().max()) < INTERPOLATION_ATOL
    # Projections still use the (pseudo-inverse) factorisation: Pythagoras holds.
    r, p = t.projection_norms(t.W_star - t.W0)
    assert r == pytest.approx(t.target_norm, rel=1e-9) and p < 1e-5 * r


def test_solve_psd_matches_dense_solve_and_reports_spectrum():
    gen = torch.Generator().manual_seed(6)
    Q, _ = torch.linalg.qr(torch.randn(5, 5, generator=gen, dtype=torch.float64))
    eigenvalues = torch.tensor([0.5, 1.0, 2.0, 4.0, 8.0], dtype=torch.float64)
    A = Q @ torch.diag(eigenvalues) @ Q.T
    B = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    X, info = solve_psd(A, B)
    torch.testing.assert_close(X, torch.linalg.solve(A, B), rtol=0, atol=1e-12)
    assert info.lambda_min == pytest.approx(0.5, rel=1e-12)
    assert info.cond == pytest.approx(16.0, rel=1e-12)
    assert not info.used_pinv
    x1, _ = solve_psd(A, B[:, 0])
    assert x1.shape == (5,)
    torch.testing.assert_close(x1, X[:, 0], rtol=0, atol=1e-14)


def test_solve_psd_never_returns_nan():
    zero = torch.zeros(3, 3, dtype=torch.float64)
    with pytest.warns(SingularGramWarning, match="condition number = inf"):
        X, info = solve_psd(zero, torch.ones(3, dtype=torch.float64))
    assert torch.equal(X, torch.zeros(3, dtype=torch.float64)) and info.used_pinv
    bad = torch.eye(3, dtype=torch.float64)
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        solve_psd(bad, torch.ones(3, dtype=torch.float64))


def test_min_norm_target_rejects_bad_shapes_and_values():
    X, y, net = setup_problem()
    Xt = augment_inputs(X, True)
    with pytest.raises(ValueError, match="y \\(n,\\)"):
        min_norm_target(Xt, y[:-1], net.W.detach(), net.a)
    y_nan = y.clone()
    y_nan[2] = float("nan")
    with pytest.raises(ValueError, match="y contains NaN"):
        min_norm_target(Xt, y_nan, net.W.detach(), net.a)


def test_float32_weights_are_promoted_to_float64():
    X, y, net = setup_problem()
    t = target_for(X, y, net)
    V = (t.W_star - t.W0).float()
    r32, p32 = t.projection_norms(V)
    r64, _ = t.projection_norms(V.double())
    assert r32 == pytest.approx(r64, rel=1e-6) and p32 < 1e-3 * r32
    assert t.jvp(V).dtype == torch.float64


def test_a_small_perpendicular_part_is_measured_to_its_own_precision():
    """V = (a vector of norm 50 in col(J0)) + 1e-6 (a unit vector orthogonal to it): ||P0perp V||
    is 1e-6 to 1e-6 relative, where Pythagoras would leave an absolute error of about
    eps 50^2 / 1e-6 ~ 3e-7 (as seen early in arora_fig2's runs)."""
    X, y, net = setup_problem()
    t = target_for(X, y, net)
    J = explicit_jacobian(net, X)
    v = reference.range_plus_orthogonal(J, 50.0, 1e-6, seed=9)
    norm_range, norm_perp = t.projection_norms(v.reshape(t.W0.shape))
    assert norm_perp == pytest.approx(1e-6, rel=1e-6)
    assert norm_range == pytest.approx(50, rel=1e-12)
