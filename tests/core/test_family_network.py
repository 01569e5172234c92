import math

import numpy as np
import pytest
import torch
from torch.func import jvp

from helpers import reference
from minnorm.core.activations import ACTIVATIONS, get_activation
from minnorm.core.family_network import (
    empirical_ntk_gram,
    family_outputs,
    linearized_outputs,
    parameter_jvp,
    parameter_vjp,
)
from minnorm.core.kernels import activation_pattern, ntk_gram
from minnorm.core.model import augment_inputs, init_weights, network_outputs

# The agreement with explicit torch.func Jacobians at small sizes: sums of ~m p products
# of O(1) numbers in float64 are exact to ~1e-15.
JACOBIAN_ATOL = 1e-12
LEAK = 0.1  # a slope far from 0 and 1, so that leaky_relu differs from both of its limits
FAMILIES = [(name, train) for name in ACTIVATIONS for train in (False, True)]
FAMILY_IDS = [f"{name}-{'trained' if train else 'fixed'}" for name, train in FAMILIES]


def problem(n=9, d=3, m=40, kappa=0.8, bias=True, seed=0):
    """Inputs X: (n, d) with non-unit norms, W0: (m, d + bias), a0: (m,) = +-1."""
    gen = torch.Generator().manual_seed(50 + seed)
    X = 1.3 * torch.randn(n, d, generator=gen, dtype=torch.float64)
    W0, a0 = init_weights(m, d + int(bias), kappa, seed=seed)
    return X, W0, a0


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@pytest.mark.parametrize("bias", [True, False])
def test_outputs_match_numpy_reference(name, bias):
    X, W0, a0 = problem(bias=bias)
    a = a0 * torch.linspace(0.5, 1.5, len(a0), dtype=torch.float64)  # a trained a is not +-1
    got = family_outputs(W0, augment_inputs(X, bias), a, get_activation(name, leak=LEAK))
    expected = reference.family_outputs(W0.numpy(), a.numpy(), X.numpy(), bias, name, LEAK)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-14)


def test_relu_outputs_are_todays_network_bit_for_bit():
    X, W0, a0 = problem(m=300)
    Xt = augment_inputs(X, True)
    assert torch.equal(
        family_outputs(W0, Xt, a0, get_activation("relu")), network_outputs(W0, Xt, a0)
    )


@pytest.mark.parametrize("name,train_output", FAMILIES, ids=FAMILY_IDS)
def test_gram_equals_explicit_jacobian_gram(name, train_output):
    X, W0, a0 = problem()
    act = get_activation(name, leak=LEAK)
    J = reference.family_jacobian(
        W0, a0, X, True, activation=name, leak=LEAK, train_output=train_output
    )
    Xt = augment_inputs(X, True)
    Z0 = Xt @ W0.T
    G = empirical_ntk_gram(Xt, Z0, Xt, Z0, a0, act, train_output=train_output)
    torch.testing.assert_close(G, J @ J.T, rtol=0, atol=JACOBIAN_ATOL)
    # The cross Gram between test and train inputs, from two different pre-activation tensors.
    X_test = problem(n=4, seed=3)[0]
    J_test = reference.family_jacobian(
        W0, a0, X_test, True, activation=name, leak=LEAK, train_output=train_output
    )
    Xt_test = augment_inputs(X_test, True)
    cross = empirical_ntk_gram(Xt_test, Xt_test @ W0.T, Xt, Z0, a0, act, train_output=train_output)
    torch.testing.assert_close(cross, J_test @ J.T, rtol=0, atol=JACOBIAN_ATOL)


def test_relu_gram_with_fixed_output_is_ntk_gram_bit_for_bit():
    X, W0, a0 = problem(n=30, m=500)
    Xt = augment_inputs(X, True)
    Z0 = Xt @ W0.T
    S = activation_pattern(Xt, W0)
    G = empirical_ntk_gram(Xt, Z0, Xt, Z0, a0, get_activation("relu"), train_output=False)
    assert torch.equal(G, ntk_gram(Xt, S, Xt, S))


@pytest.mark.parametrize("name,train_output", FAMILIES, ids=FAMILY_IDS)
def test_jvp_and_vjp_are_the_explicit_jacobian(name, train_output):
    X, W0, a0 = problem(bias=False)
    act = get_activation(name, leak=LEAK)
    J = reference.family_jacobian(
        W0, a0, X, False, activation=name, leak=LEAK, train_output=train_output
    )
    gen = torch.Generator().manual_seed(8)
    dW = torch.randn(W0.shape, generator=gen, dtype=torch.float64)
    da = torch.randn(a0.shape, generator=gen, dtype=torch.float64) if train_output else None
    c = torch.randn(len(X), generator=gen, dtype=torch.float64)
    Z0 = X @ W0.T
    theta = dW.reshape(-1) if da is None else torch.cat([dW.reshape(-1), da])
    torch.testing.assert_close(
        parameter_jvp(X, Z0, a0, act, dW, da), J @ theta, rtol=0, atol=JACOBIAN_ATOL
    )
    vjp_W, vjp_a = parameter_vjp(X, Z0, a0, act, c, train_output=train_output)
    expected = J.T @ c
    torch.testing.assert_close(vjp_W.reshape(-1), expected[: W0.numel()], rtol=0, atol=1e-12)
    if train_output:
        assert vjp_a is not None
        torch.testing.assert_close(vjp_a, expected[W0.numel() :], rtol=0, atol=JACOBIAN_ATOL)
    else:
        assert vjp_a is None and len(expected) == W0.numel()


# torch 2.13's forward-mode AD scripts its decompositions with the deprecated torch.jit.script
# the first time it runs; nothing we can change from here.
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("name,train_output", FAMILIES, ids=FAMILY_IDS)
def test_linearized_outputs_match_forward_mode_linearisation(name, train_output):
    X, W0, a0 = problem()
    act = get_activation(name, leak=LEAK)
    s = reference.activation_torch(name, LEAK)
    Xt = augment_inputs(X, True)
    gen = torch.Generator().manual_seed(9)
    W = W0 + 0.3 * torch.randn(W0.shape, generator=gen, dtype=torch.float64)
    a = a0 + 0.3 * torch.randn(a0.shape, generator=gen, dtype=torch.float64)

    def f(V, b):
        return s(Xt @ V.T) @ b / math.sqrt(V.shape[0])

    da = a - a0 if train_output else torch.zeros_like(a0)
    f0, tangent = jvp(f, (W0, a0), (W - W0, da))
    got = linearized_outputs(Xt, W0, a0, act, W, a if train_output else None)
    torch.testing.assert_close(got, f0 + tangent, rtol=0, atol=JACOBIAN_ATOL)
    torch.testing.assert_close(linearized_outputs(Xt, W0, a0, act, W0), f0, rtol=0, atol=1e-15)


@pytest.mark.parametrize("name", ["relu", "leaky_relu"])
def test_homogeneous_activations_satisfy_eulers_identity(name):
    """f is 1-homogeneous in W and 2-homogeneous in (W, a): J0^T theta0 = f0 and 2 f0."""
    X, W0, a0 = problem()
    act = get_activation(name, leak=LEAK)
    Xt = augment_inputs(X, True)
    Z0 = Xt @ W0.T
    f0 = family_outputs(W0, Xt, a0, act)
    torch.testing.assert_close(parameter_jvp(Xt, Z0, a0, act, W0), f0, rtol=0, atol=1e-14)
    torch.testing.assert_close(parameter_jvp(Xt, Z0, a0, act, W0, a0), 2 * f0, rtol=0, atol=1e-14)


@pytest.mark.parametrize("name,train_output", FAMILIES, ids=FAMILY_IDS)
@pytest.mark.parametrize("loss", ["half_sum", "mean"])
def test_numpy_gd_reference_steps_along_the_autograd_gradient(name, train_output, loss):
    """The NumPy loop the training phase will compare against: its gradient is J^T r (jacrev) and
    its iterates are theta_k - lr * gradient, with a left alone when it is not trained."""
    X, W0, a0 = problem()
    gen = torch.Generator().manual_seed(10)
    y = torch.randn(len(X), generator=gen, dtype=torch.float64)
    value, grad_W, grad_a = reference.family_loss_and_grad(
        W0.numpy(), a0.numpy(), X.numpy(), y.numpy(), loss, True,
        activation=name, leak=LEAK, train_output=train_output,
    )  # fmt: skip
    f0 = reference.family_outputs(W0.numpy(), a0.numpy(), X.numpy(), True, name, LEAK)
    r = (f0 - y.numpy()) * (1.0 if loss == "half_sum" else 2.0 / len(X))
    J = reference.family_jacobian(
        W0, a0, X, True, activation=name, leak=LEAK, train_output=train_output
    ).numpy()
    flat = grad_W.reshape(-1) if grad_a is None else np.concatenate([grad_W.reshape(-1), grad_a])
    np.testing.assert_allclose(flat, J.T @ r, rtol=0, atol=JACOBIAN_ATOL)
    iterates, diverged = reference.family_gd_iterates(
        X.numpy(), y.numpy(), W0.numpy(), a0.numpy(), 0.05, loss, 3, True, 1e6,
        activation=name, leak=LEAK, train_output=train_output,
    )  # fmt: skip
    assert diverged is None and sorted(iterates) == [0, 1, 2, 3]
    W1, a1 = iterates[1]
    np.testing.assert_allclose(W1, W0.numpy() - 0.05 * grad_W, rtol=0, atol=1e-15)
    assert np.array_equal(a1, a0.numpy()) != train_output
    losses = [
        reference.family_loss_and_grad(
            W, a, X.numpy(), y.numpy(), loss, True,
            activation=name, leak=LEAK, train_output=train_output,
        )[0]
        for W, a in iterates.values()
    ]  # fmt: skip
    assert losses[3] < losses[0]
