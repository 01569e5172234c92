"""Independent references the tests compare the library against: NumPy network and GD, explicit
Jacobian; for other activations and a trained output layer the same, and a Gaussian quadrature.

Nothing here imports minnorm: each formula is written out again from the paper's definitions,
f(x; W) = m^-1/2 sum_r a_r relu(w_r . x~) with x~ = (x, 1) when a bias is used, so a mistake in
the library cannot cancel out of a test.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
from scipy import special
from torch.func import jacrev


def augment(X: np.ndarray, bias: bool) -> np.ndarray:
    """X: (n, d) -> (n, d + 1) with a column of ones when ``bias``, else X."""
    return np.hstack([X, np.ones((X.shape[0], 1))]) if bias else X


def outputs(W: np.ndarray, X: np.ndarray, a: np.ndarray, bias: bool) -> np.ndarray:
    """Network outputs (n,) for W: (m, p), raw inputs X: (n, d), signs a: (m,)."""
    return np.maximum(augment(X, bias) @ W.T, 0) @ a / np.sqrt(W.shape[0])


def loss_and_grad(
    W: np.ndarray, X: np.ndarray, y: np.ndarray, a: np.ndarray, loss: str, bias: bool
) -> tuple[float, np.ndarray]:
    """The training loss and dL/dW: (m, p) from dL/dw_r = m^-1/2 a_r sum_i 1{z_ir > 0} r_i x~_i.

    ``half_sum``: L = 1/2 sum (f - y)^2, r = f - y; ``mean``: L = 1/n sum (f - y)^2, r = 2/n (f -
    y).
    """
    Xt = augment(X, bias)
    m, n = W.shape[0], X.shape[0]
    Z = Xt @ W.T
    f = np.maximum(Z, 0) @ a / np.sqrt(m)
    value = 0.5 * np.sum((f - y) ** 2) if loss == "half_sum" else np.mean((f - y) ** 2)
    r = (f - y) * (1.0 if loss == "half_sum" else 2.0 / n)
    return float(value), (a / np.sqrt(m))[:, None] * (((Z > 0) * r[:, None]).T @ Xt)


def gd_iterates(
    X: np.ndarray,
    y: np.ndarray,
    W0: np.ndarray,
    a: np.ndarray,
    lr: float,
    loss: str,
    steps: int,
    bias: bool,
    divergence_ratio: float,
) -> tuple[dict[int, np.ndarray], int | None]:
    """Plain GD W <- W - lr dL/dW: iterates W_k for k = 0..steps, and the first diverged step
    (non-finite W_k, or a loss non-finite or above ``divergence_ratio`` times the loss at W0)."""
    W = W0.copy()
    iterates = {0: W.copy()}
    limit = None
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(steps):
            value, grad = loss_and_grad(W, X, y, a, loss, bias)
            limit = divergence_ratio * value if limit is None else limit
            if not (np.isfinite(W).all() and value <= limit):
                return iterates, k
            W = W - lr * grad
            iterates[k + 1] = W.copy()
    return iterates, None


def jacobian(W: torch.Tensor, X: torch.Tensor, a: torch.Tensor, bias: bool) -> torch.Tensor:
    """J^T: (n, m p), row i = grad_W f(x_i; W), by reverse-mode autodiff (torch.func.jacrev) of
    the network written out here. relu'(0) = 0, as in autograd."""
    Xt = torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype)], dim=1) if bias else X

    def f(V: torch.Tensor) -> torch.Tensor:
        return torch.relu(Xt @ V.T) @ a / V.shape[0] ** 0.5

    return jacrev(f)(W.detach()).reshape(X.shape[0], -1)


# Other activations and a trained output layer (issue 29): f(x; W, a) = m^-1/2 sum_r a_r s(w_r .
# x~), theta = (W, a) when the output layer is trained, W alone otherwise. Each s and s' is
# written out again here from its definition.


def activation_np(name: str, leak: float) -> tuple[Callable, Callable]:
    """(s, s') as NumPy functions; s'(0) is the slope on the right for z > 0 only, as autograd."""
    if name == "relu":
        return (lambda z: np.maximum(z, 0.0)), (lambda z: (z > 0).astype(float))
    if name == "leaky_relu":
        return (lambda z: np.where(z > 0, z, leak * z)), (lambda z: np.where(z > 0, 1.0, leak))
    if name == "softplus":
        return (lambda z: np.logaddexp(0.0, z)), special.expit
    if name == "tanh":
        return np.tanh, (lambda z: 1.0 - np.tanh(z) ** 2)
    if name == "erf":
        return special.erf, (lambda z: 2.0 / np.sqrt(np.pi) * np.exp(-(z**2)))
    raise ValueError(name)


def activation_torch(name: str, leak: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """s as a torch function for autograd (its derivative comes from autograd, not from us)."""
    return {
        "relu": torch.relu,
        "leaky_relu": lambda z: torch.nn.functional.leaky_relu(z, leak),
        "softplus": lambda z: torch.log1p(torch.exp(z)),
        "tanh": torch.tanh,
        "erf": torch.erf,
    }[name]


def family_outputs(
    W: np.ndarray, a: np.ndarray, X: np.ndarray, bias: bool, activation: str, leak: float
) -> np.ndarray:
    """Network outputs (n,) for W: (m, p), a: (m,), raw inputs X: (n, d)."""
    s, _ = activation_np(activation, leak)
    return s(augment(X, bias) @ W.T) @ a / np.sqrt(W.shape[0])


def family_loss_and_grad(
    W: np.ndarray,
    a: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    loss: str,
    bias: bool,
    *,
    activation: str,
    leak: float,
    train_output: bool,
) -> tuple[float, np.ndarray, np.ndarray | None]:
    """The loss, dL/dW: (m, p) and dL/da: (m,) (None when the output layer is fixed).

    dL/dw_r = m^-1/2 a_r sum_i r_i s'(z_ir) x~_i, dL/da_r = m^-1/2 sum_i r_i s(z_ir), with r as in
    ``loss_and_grad``.
    """
    s, ds = activation_np(activation, leak)
    Xt = augment(X, bias)
    m, n = W.shape[0], X.shape[0]
    Z = Xt @ W.T
    f = s(Z) @ a / np.sqrt(m)
    value = 0.5 * np.sum((f - y) ** 2) if loss == "half_sum" else np.mean((f - y) ** 2)
    r = (f - y) * (1.0 if loss == "half_sum" else 2.0 / n)
    grad_W = (a / np.sqrt(m))[:, None] * ((ds(Z) * r[:, None]).T @ Xt)
    grad_a = s(Z).T @ r / np.sqrt(m) if train_output else None
    return float(value), grad_W, grad_a


def family_gd_iterates(
    X: np.ndarray,
    y: np.ndarray,
    W0: np.ndarray,
    a0: np.ndarray,
    lr: float,
    loss: str,
    steps: int,
    bias: bool,
    divergence_ratio: float,
    *,
    activation: str,
    leak: float,
    train_output: bool,
) -> tuple[dict[int, tuple[np.ndarray, np.ndarray]], int | None]:
    """Plain full-batch GD on theta: iterates (W_k, a_k) for k = 0..steps (a_k = a0 when the output
    layer is fixed) and the first diverged step, as ``gd_iterates``."""
    W, a = W0.copy(), a0.copy()
    iterates = {0: (W.copy(), a.copy())}
    limit = None
    with np.errstate(over="ignore", invalid="ignore"):
        for k in range(steps):
            value, grad_W, grad_a = family_loss_and_grad(
                W,
                a,
                X,
                y,
                loss,
                bias,
                activation=activation,
                leak=leak,
                train_output=train_output,
            )
            limit = divergence_ratio * value if limit is None else limit
            if not (np.isfinite(W).all() and np.isfinite(a).all() and value <= limit):
                return iterates, k
            W = W - lr * grad_W
            if grad_a is not None:
                a = a - lr * grad_a
            iterates[k + 1] = (W.copy(), a.copy())
    return iterates, None


def family_jacobian(
    W: torch.Tensor,
    a: torch.Tensor,
    X: torch.Tensor,
    bias: bool,
    *,
    activation: str,
    leak: float,
    train_output: bool,
) -> torch.Tensor:
    """J^T: (n, m p) or (n, m p + m) when the output layer is trained: row i = grad_theta f(x_i)
    with theta = (W flattened row by row, then a), by torch.func.jacrev."""
    Xt = torch.cat([X, torch.ones(X.shape[0], 1, dtype=X.dtype)], dim=1) if bias else X
    s = activation_torch(activation, leak)

    def f(V: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return s(Xt @ V.T) @ b / V.shape[0] ** 0.5

    n = X.shape[0]
    if not train_output:
        return jacrev(f, argnums=0)(W.detach(), a.detach()).reshape(n, -1)
    J_W, J_a = jacrev(f, argnums=(0, 1))(W.detach(), a.detach())
    return torch.cat([J_W.reshape(n, -1), J_a.reshape(n, -1)], dim=1)


# Gauss-Legendre nodes per smooth piece of the reference quadrature below.
_LEGENDRE_NODES = 200
# Both standard-normal coordinates are integrated over [-_NORMAL_RANGE, _NORMAL_RANGE]: the mass
# outside is 2 Phi(-10) = 1.5e-23.
_NORMAL_RANGE = 10.0


@functools.cache
def _legendre_rule() -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(_LEGENDRE_NODES)


def _legendre_pieces(breaks: np.ndarray, lower: float, upper: float) -> tuple[np.ndarray, ...]:
    """Gauss-Legendre nodes and weights on [lower, upper] split at ``breaks`` (one per row).

    breaks: (k,) cut points in [lower, upper]; returns (nodes (k, 2N), weights (k, 2N)).
    """
    x, w = _legendre_rule()
    cut = np.clip(breaks, lower, upper)[:, None]
    left = (cut - lower) / 2 * x[None, :] + (cut + lower) / 2
    right = (upper - cut) / 2 * x[None, :] + (upper + cut) / 2
    nodes = np.concatenate([left, right], axis=1)
    weights = np.concatenate([(cut - lower) / 2 * w[None, :], (upper - cut) / 2 * w[None, :]], 1)
    return nodes, weights


def _normal_density(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)


def gaussian_pair_expectation(
    fn: Callable[[np.ndarray], np.ndarray], x_a: np.ndarray, x_b: np.ndarray, kappa: float
) -> float:
    """E[fn(w . x_a) fn(w . x_b)] for w ~ N(0, kappa^2 I), by nested Gauss-Legendre quadrature.

    Written independently of minnorm's trapezoid rule: in the Cholesky coordinates u = s z1,
    v = l21 z1 + l22 z2 of the pair, each axis is split where u = 0 or v = 0, so ``fn`` may have
    a kink or a jump at 0 (relu, leaky relu and their derivatives) and each piece stays smooth.
    """
    s = kappa * np.linalg.norm(x_a)
    covariance = kappa**2 * float(x_a @ x_b)
    l21 = covariance / s if s > 0 else 0.0
    l22 = np.sqrt(max(kappa**2 * float(x_b @ x_b) - l21**2, 0.0))
    z1, w1 = _legendre_pieces(np.zeros(1), -_NORMAL_RANGE, _NORMAL_RANGE)
    z1, w1 = z1[0], w1[0] * _normal_density(z1[0])
    # Where v = 0 on each z1 line; far outside the range when l22 is ~0 (v then does not vary).
    breaks = -l21 * z1 / l22 if l22 > 1e-300 else np.full_like(z1, _NORMAL_RANGE)
    z2, w2 = _legendre_pieces(breaks, -_NORMAL_RANGE, _NORMAL_RANGE)
    inner = np.sum(w2 * _normal_density(z2) * fn(l21 * z1[:, None] + l22 * z2), axis=1)
    return float(np.sum(w1 * fn(s * z1) * inner))


def range_plus_orthogonal(
    J: torch.Tensor, range_norm: float, perp_norm: float, seed: int
) -> torch.Tensor:
    """A vector (P,) with a part of norm `range_norm` in the column space of J^T (J: (n, P), the
    explicit Jacobian) and one of norm `perp_norm` orthogonal to it, from a QR basis of J^T; the
    orthogonal part is projected out twice so that it is orthogonal to working precision."""
    Q, _ = torch.linalg.qr(J.T)
    gen = torch.Generator().manual_seed(seed)
    r = torch.randn(J.shape[1], generator=gen, dtype=torch.float64)
    for _ in range(2):
        r = r - Q @ (Q.T @ r)
    in_range = Q @ torch.randn(Q.shape[1], generator=gen, dtype=torch.float64)
    in_range = range_norm * in_range / torch.linalg.vector_norm(in_range)
    return in_range + perp_norm * r / torch.linalg.vector_norm(r)
