import math

import pytest
import torch

from helpers import reference
from minnorm.core.activations import ACTIVATIONS, get_activation
from minnorm.core.family_target import family_min_norm_target
from minnorm.core.model import augment_inputs, init_weights
from minnorm.core.target import SingularGramWarning, min_norm_target

# The agreement with explicit torch.func Jacobians at small sizes: the problem below has
# cond(G) <= 6e2 for every family, so its n x n solves keep errors near 6e2 * 2.2e-16 ~ 1e-13
# (at n = 10, m = 48 softplus reaches cond 3e4 and 5e-12).
JACOBIAN_ATOL = 1e-12
# relu with a fixed against core/target.py: the same operations, so equal to rounding or better.
SAME_FORMULA_ATOL = 1e-14
LEAK = 0.1
FAMILIES = [(name, train) for name in ACTIVATIONS for train in (False, True)]
FAMILY_IDS = [f"{name}-{'trained' if train else 'fixed'}" for name, train in FAMILIES]


def problem(n=8, d=4, m=64, kappa=1.0, bias=True, seed=0):
    """X: (n, d), y: (n,), W0: (m, p), a0: (m,); n < m so that G is invertible."""
    gen = torch.Generator().manual_seed(70 + seed)
    X = 1.2 * torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = torch.randn(n, generator=gen, dtype=torch.float64)
    W0, a0 = init_weights(m, d + int(bias), kappa, seed=seed)
    return X, y, W0, a0


def jacobian(X, W0, a0, name, train_output, bias=True):
    return reference.family_jacobian(
        W0, a0, X, bias, activation=name, leak=LEAK, train_output=train_output
    )


def flat(dW, da):
    return dW.reshape(-1) if da is None else torch.cat([dW.reshape(-1), da])


@pytest.mark.parametrize("name,train_output", FAMILIES, ids=FAMILY_IDS)
def test_theta_star_is_the_pseudo_inverse_solution(name, train_output):
    X, y, W0, a0 = problem()
    t = family_min_norm_target(
        augment_inputs(X, True), y, W0, a0, get_activation(name, leak=LEAK),
        train_output=train_output,
    )  # fmt: skip
    J = jacobian(X, W0, a0, name, train_output)
    f0 = torch.tensor(reference.family_outputs(W0.numpy(), a0.numpy(), X.numpy(), True, name, LEAK))
    torch.testing.assert_close(t.f0, f0, rtol=0, atol=JACOBIAN_ATOL)
    torch.testing.assert_close(t.G, J @ J.T, rtol=0, atol=JACOBIAN_ATOL)
    da = None if t.a_star is None else t.a_star - a0
    assert (t.a_star is not None) == train_output
    delta = flat(t.W_star - W0, da)
    torch.testing.assert_close(delta, torch.linalg.pinv(J) @ (y - f0), rtol=0, atol=JACOBIAN_ATOL)
    # theta* interpolates the linearised model, and its squared distance is the quadratic form.
    torch.testing.assert_close(f0 + J @ delta, y, rtol=0, atol=1e-10)
    torch.testing.assert_close(
        t.linearized_predict(t.Xt, t.W_star, t.a_star), y, rtol=0, atol=1e-10
    )
    assert t.target_norm**2 == pytest.approx(t.yGy, rel=1e-12)
    assert t.target_norm == pytest.approx(float(torch.linalg.vector_norm(delta)), rel=1e-14)
    assert not t.info.used_pinv


@pytest.mark.parametrize("name,train_output", FAMILIES, ids=FAMILY_IDS)
def test_distances_and_lyapunov_split_against_explicit_projector(name, train_output):
    X, y, W0, a0 = problem(bias=False)
    t = family_min_norm_target(
        X, y, W0, a0, get_activation(name, leak=LEAK), train_output=train_output
    )
    J = jacobian(X, W0, a0, name, train_output, bias=False)
    P0 = J.T @ torch.linalg.solve(J @ J.T, J)  # projection onto col(J0) in theta space
    gen = torch.Generator().manual_seed(4)
    W = W0 + 0.4 * torch.randn(W0.shape, generator=gen, dtype=torch.float64)
    a = a0 + 0.4 * torch.randn(a0.shape, generator=gen, dtype=torch.float64)
    a_arg = a if train_output else None
    d = t.distances(W, a_arg)
    theta = flat(W, a if train_output else None)
    theta_star = flat(t.W_star, t.a_star)
    theta0 = flat(W0, a0 if train_output else None)
    v = theta - theta_star
    assert d.to_target == pytest.approx(float(torch.linalg.vector_norm(v)), rel=1e-14)
    assert d.to_target_range == pytest.approx(float(torch.linalg.vector_norm(P0 @ v)), rel=1e-10)
    assert d.to_target_perp == pytest.approx(float(torch.linalg.vector_norm(v - P0 @ v)), rel=1e-10)
    assert d.from_init == pytest.approx(float(torch.linalg.vector_norm(theta - theta0)), rel=1e-14)
    # theta* - theta0 lies in col(J0): its perpendicular part is rounding only.
    at_init = t.distances(W0, a0 if train_output else None)
    assert at_init.to_target == pytest.approx(t.target_norm, rel=1e-14)
    assert at_init.to_target_perp < 1e-12 * at_init.to_target_range  # rounding of the residual
    assert at_init.from_init == 0.0


@pytest.mark.parametrize("name,train_output", FAMILIES, ids=FAMILY_IDS)
def test_null_space_moves_keep_interpolation_and_add_distance(name, train_output):
    X, y, W0, a0 = problem()
    t = family_min_norm_target(
        augment_inputs(X, True), y, W0, a0, get_activation(name, leak=LEAK),
        train_output=train_output,
    )  # fmt: skip
    J = jacobian(X, W0, a0, name, train_output)
    gen = torch.Generator().manual_seed(5)
    V = torch.randn(J.shape[1], generator=gen, dtype=torch.float64)
    V_null = V - J.T @ torch.linalg.solve(J @ J.T, J @ V)
    dW = V_null[: W0.numel()].reshape(W0.shape)
    da = V_null[W0.numel() :] if train_output else None
    a = None if da is None else t.a_star + da
    torch.testing.assert_close(t.linearized_predict(t.Xt, t.W_star + dW, a), y, rtol=0, atol=1e-10)
    moved = t.distances(t.W_star + dW, a)
    assert moved.from_init**2 == pytest.approx(t.target_norm**2 + float(V_null @ V_null), rel=1e-10)
    assert moved.to_target_range < 1e-6 * moved.to_target_perp


def test_relu_with_fixed_output_reproduces_min_norm_target():
    X, y, W0, a0 = problem(n=40, d=5, m=600)
    Xt = augment_inputs(X, True)
    old = min_norm_target(Xt, y, W0, a0)
    new = family_min_norm_target(Xt, y, W0, a0, get_activation("relu"), train_output=False)
    assert torch.equal(new.G, old.G)
    assert torch.equal(new.f0, old.f0)
    torch.testing.assert_close(new.W_star, old.W_star, rtol=0, atol=SAME_FORMULA_ATOL)
    assert new.a_star is None
    assert new.yGy == pytest.approx(old.yGy, rel=SAME_FORMULA_ATOL)
    gen = torch.Generator().manual_seed(6)
    W = W0 + 0.2 * torch.randn(W0.shape, generator=gen, dtype=torch.float64)
    X_new = augment_inputs(torch.randn(7, 5, generator=gen, dtype=torch.float64), True)
    torch.testing.assert_close(
        new.linearized_predict(X_new, W), old.linearized_predict(X_new, W), rtol=0, atol=1e-13
    )
    d = new.distances(W)
    r, p = old.projection_norms(W - old.W_star)
    assert d.to_target_range == pytest.approx(r, rel=1e-12)
    assert d.to_target_perp == pytest.approx(p, rel=1e-12)
    assert d.to_target == pytest.approx(float(torch.linalg.vector_norm(W - old.W_star)), rel=1e-14)


@pytest.mark.parametrize("train_output", [False, True])
def test_leaky_relu_at_zero_slope_gives_relus_target(train_output):
    X, y, W0, a0 = problem()
    Xt = augment_inputs(X, True)
    relu = family_min_norm_target(Xt, y, W0, a0, get_activation("relu"), train_output=train_output)
    leaky = family_min_norm_target(
        Xt, y, W0, a0, get_activation("leaky_relu", leak=0.0), train_output=train_output
    )
    assert torch.equal(relu.G, leaky.G) and torch.equal(relu.W_star, leaky.W_star)
    assert (relu.a_star is None and leaky.a_star is None) or torch.equal(relu.a_star, leaky.a_star)


def test_training_the_output_layer_adds_a_psd_term_and_shortens_the_target():
    """G_trained = G_fixed + s(Z0) s(Z0)^T / m >= G_fixed, so (y - f0)^T G^-1 (y - f0) can only
    fall."""
    X, y, W0, a0 = problem()
    Xt = augment_inputs(X, True)
    for name in ACTIVATIONS:
        act = get_activation(name, leak=LEAK)
        fixed = family_min_norm_target(Xt, y, W0, a0, act, train_output=False)
        trained = family_min_norm_target(Xt, y, W0, a0, act, train_output=True)
        assert float(torch.linalg.eigvalsh(trained.G - fixed.G)[0]) > -1e-14, name
        assert trained.yGy < fixed.yGy, name


def test_fixed_output_layer_refuses_another_a():
    X, y, W0, a0 = problem()
    t = family_min_norm_target(
        augment_inputs(X, True), y, W0, a0, get_activation("tanh"), train_output=False
    )
    assert t.distances(W0, a0).from_init == 0.0  # a0 itself is accepted
    with pytest.raises(ValueError, match="output layer is fixed"):
        t.distances(W0, -a0)
    with pytest.raises(ValueError, match="output layer is fixed"):
        t.linearized_predict(t.Xt, W0, 2 * a0)


def test_singular_gram_falls_back_with_warning():
    X, y, W0, a0 = problem()
    Xt = augment_inputs(torch.cat([X, X[:1]]), True)
    y = torch.cat([y, y[:1] + 0.5])
    with pytest.warns(SingularGramWarning, match="condition number"):
        t = family_min_norm_target(Xt, y, W0, a0, get_activation("softplus"), train_output=True)
    assert t.info.used_pinv and torch.isfinite(t.W_star).all()
    residual = t.linearized_predict(t.Xt, t.W_star, t.a_star) - y
    # The duplicated pair is fitted to the mean of its two labels.
    assert float(residual[0]) == pytest.approx(0.25, abs=1e-8)
    assert float(residual[-1]) == pytest.approx(-0.25, abs=1e-8)


def test_rejects_bad_shapes_and_values():
    X, y, W0, a0 = problem(bias=False)
    act = get_activation("erf")
    with pytest.raises(ValueError, match=r"a0 \(m,\)"):
        family_min_norm_target(X, y, W0, a0[:-1], act, train_output=True)
    y_bad = y.clone()
    y_bad[0] = math.inf
    with pytest.raises(ValueError, match="y contains NaN or infinite"):
        family_min_norm_target(X, y_bad, W0, a0, act, train_output=True)


@pytest.mark.parametrize("name,train_output", FAMILIES, ids=FAMILY_IDS)
@pytest.mark.parametrize("loss_scale", [1.0, 0.25])
def test_linearized_gd_iterate_equals_the_plain_linearised_loop(name, train_output, loss_scale):
    """theta_{k+1} = theta_k - lr s J0^T (f0 + J0 (theta_k - theta0) - y), k steps, with the
    explicit Jacobian, against the closed form through G's eigenpairs."""
    X, y, W0, a0 = problem()
    t = family_min_norm_target(
        augment_inputs(X, True), y, W0, a0, get_activation(name, leak=LEAK),
        train_output=train_output,
    )  # fmt: skip
    J = jacobian(X, W0, a0, name, train_output)
    lr = 1.0 / float(torch.linalg.eigvalsh(J @ J.T)[-1])  # lr s lambda_max <= 1
    theta0 = flat(W0, a0 if train_output else None)
    theta = theta0.clone()
    for _ in range(40):
        theta = theta - lr * loss_scale * J.T @ (t.f0 + J @ (theta - theta0) - y)
    W_lin, a_lin = t.linearized_gd_iterate(lr, 40, residual_scale=loss_scale)
    assert (a_lin is not None) == train_output
    torch.testing.assert_close(flat(W_lin, a_lin), theta, rtol=0, atol=JACOBIAN_ATOL)
    # No steps: theta0; very many (lr s lambda_max < 2): theta*.
    W_0, a_0 = t.linearized_gd_iterate(lr, 0, residual_scale=loss_scale)
    assert torch.equal(W_0, W0) and (a_0 is None or torch.equal(a_0, a0))
    W_inf, a_inf = t.linearized_gd_iterate(lr, 10**12, residual_scale=loss_scale)
    torch.testing.assert_close(
        flat(W_inf, a_inf), flat(t.W_star, t.a_star), rtol=0, atol=JACOBIAN_ATOL
    )


def test_linearized_gd_iterate_past_the_stable_step_still_follows_the_loop():
    """1 <= lr lambda < 2: (1 - lr lambda)^k alternates in sign; the closed form keeps it."""
    X, y, W0, a0 = problem()
    t = family_min_norm_target(
        augment_inputs(X, True), y, W0, a0, get_activation("tanh"), train_output=True
    )
    J = jacobian(X, W0, a0, "tanh", True)
    lr = 1.8 / float(torch.linalg.eigvalsh(J @ J.T)[-1])
    theta0 = flat(W0, a0)
    theta = theta0.clone()
    for _ in range(25):
        theta = theta - lr * J.T @ (t.f0 + J @ (theta - theta0) - y)
    torch.testing.assert_close(
        flat(*t.linearized_gd_iterate(lr, 25)), theta, rtol=0, atol=JACOBIAN_ATOL
    )


@pytest.mark.parametrize("name,train_output", FAMILIES, ids=FAMILY_IDS)
def test_a_small_perpendicular_part_is_measured_to_its_own_precision(name, train_output):
    """theta - theta* = (a vector of norm 50 in col(J0)) + 1e-6 (a unit vector orthogonal to it):
    ||P0perp (theta - theta*)|| is 1e-6 to 1e-6 relative. By Pythagoras it would carry an
    absolute error of about eps 50^2 / 1e-6 ~ 3e-7, a third of the value."""
    X, y, W0, a0 = problem(bias=False)
    t = family_min_norm_target(
        X, y, W0, a0, get_activation(name, leak=LEAK), train_output=train_output
    )
    J = jacobian(X, W0, a0, name, train_output, bias=False)  # (n, P)
    v = reference.range_plus_orthogonal(J, 50.0, 1e-6, seed=8)
    m, p = W0.shape
    W = t.W_star + v[: m * p].reshape(m, p)
    a = (t.a_star + v[m * p :]) if train_output else None
    d = t.distances(W, a)
    assert d.to_target_perp == pytest.approx(1e-6, rel=1e-6)
    assert d.to_target_range == pytest.approx(50, rel=1e-12)
