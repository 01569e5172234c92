"""Independent references the tests compare the library against: NumPy network and GD, explicit
Jacobian.

Nothing here imports minnorm: each formula is written out again from the paper's definitions,
f(x; W) = m^-1/2 sum_r a_r relu(w_r . x~) with x~ = (x, 1) when a bias is used, so a mistake in
the library cannot cancel out of a test.
"""

from __future__ import annotations

import numpy as np
import torch
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
