"""The linearized minimum-norm interpolating target W* and projections onto col(J0)."""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from minnorm.core.kernels import activation_pattern, ntk_gram

# Below this ratio lambda_min / lambda_max a Cholesky solve in float64 keeps fewer than ~6 of
# its ~16 significant digits (error ~ cond * 2.2e-16), so we switch to the pseudo-inverse and
# treat the smaller eigenvalues as exact zeros.
DEFAULT_RTOL = 1e-10
# ||P0perp V|| by Pythagoras, sqrt(||V||^2 - ||P0 V||^2), only where its square is at least this
# share of ||V||^2: its relative error is then at most about eps / (2 * share) = 1e-14. Below it
# the residual V - P0 V is formed (``MinNormTarget.projection_norms``).
PYTHAGORAS_MIN_SHARE = 1e-2


class SingularGramWarning(UserWarning):
    """A Gram matrix was singular or nearly so; a pseudo-inverse solution was used instead."""


@dataclass(frozen=True)
class SolveInfo:
    """Spectrum summary of a PSD solve: extreme eigenvalues, condition number, fallback used."""

    lambda_min: float
    lambda_max: float
    cond: float
    used_pinv: bool


class PSDFactor:
    """A reusable factorisation of a symmetric PSD matrix A: (n, n).

    Cholesky when lambda_min(A) >= rtol * lambda_max(A), otherwise an eigendecomposition whose
    eigenvalues below that threshold count as zero (the Moore-Penrose pseudo-inverse).
    """

    def __init__(self, A: torch.Tensor, *, rtol: float = DEFAULT_RTOL) -> None:
        if A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(f"A must be square (n, n), got {tuple(A.shape)}")
        if not torch.isfinite(A).all():
            raise ValueError("A contains NaN or infinite entries")
        A = A.to(torch.float64)
        A = (A + A.T) / 2  # rounding in A's construction may leave it slightly asymmetric
        eigenvalues = _eigvalsh(A)
        lam_min, lam_max = float(eigenvalues[0]), float(eigenvalues[-1])
        cond = lam_max / lam_min if lam_min > 0 else math.inf
        self._cholesky: torch.Tensor | None = None
        self._eigvecs: torch.Tensor | None = None
        self._inv_eigvals: torch.Tensor | None = None
        if lam_max > 0 and lam_min >= rtol * lam_max:
            L, status = torch.linalg.cholesky_ex(A)
            if int(status) == 0:
                self._cholesky = L
        if self._cholesky is None:
            eigvals, eigvecs = torch.linalg.eigh(A)
            keep = eigvals > rtol * max(lam_max, 0.0)
            self._eigvecs = eigvecs[:, keep]
            self._inv_eigvals = 1.0 / eigvals[keep]
            warnings.warn(
                SingularGramWarning(
                    f"Gram matrix ({A.shape[0]}x{A.shape[0]}) is singular or ill-conditioned: "
                    f"lambda_min = {lam_min:.3e}, lambda_max = {lam_max:.3e}, "
                    f"condition number = {cond:.3e} (rtol = {rtol:.1e}); using the pseudo-inverse "
                    f"(rank {int(keep.sum())})"
                ),
                stacklevel=3,
            )
        self.info = SolveInfo(lam_min, lam_max, cond, self._cholesky is None)

    def solve(self, B: torch.Tensor) -> torch.Tensor:
        """A^-1 B (or A^+ B), B: (n,) or (n, k), same shape out; raises if non-finite."""
        B64 = B.to(torch.float64)
        rhs = B64[:, None] if B64.ndim == 1 else B64
        if self._cholesky is not None:
            X = torch.cholesky_solve(rhs, self._cholesky)
        else:
            assert self._eigvecs is not None and self._inv_eigvals is not None
            X = self._eigvecs @ (self._inv_eigvals[:, None] * (self._eigvecs.T @ rhs))
        if not torch.isfinite(X).all():
            raise FloatingPointError(f"PSD solve produced non-finite values ({self.info})")
        return X[:, 0] if B64.ndim == 1 else X


def _eigvalsh(A: torch.Tensor) -> np.ndarray:
    """Ascending eigenvalues of symmetric A: (n, n).

    CPU matrices go through numpy's LAPACK: on the shared 2-core test machine torch's threaded
    syevd took 0.6-2 s at n = 1000 against numpy's 0.25 s (it spins when the cores are busy).
    """
    if A.device.type == "cpu":
        return np.linalg.eigvalsh(A.numpy())
    return torch.linalg.eigvalsh(A).cpu().numpy()


def solve_psd(
    A: torch.Tensor, B: torch.Tensor, *, rtol: float = DEFAULT_RTOL
) -> tuple[torch.Tensor, SolveInfo]:
    """Solve A X = B for symmetric PSD A: (n, n), B: (n,) or (n, k), in float64.

    Falls back to the pseudo-inverse with a ``SingularGramWarning`` (reporting lambda_min and the
    condition number) when A is singular or lambda_min < rtol * lambda_max.
    """
    factor = PSDFactor(A, rtol=rtol)
    return factor.solve(B), factor.info


@dataclass(eq=False)
class MinNormTarget:
    """W* = argmin ||W - W0|| subject to f_L(x_i; W) = y_i, with its linearisation at W0.

    Xt: (n, p) augmented train inputs, y: (n,), W0: (m, p), a: (m,), S: (n, m) activation
    pattern at W0, G: (n, n) = J0^T J0, f0: (n,) outputs at W0, alpha: (n,) = G^-1 (y - f0),
    W_star: (m, p) = W0 + J0 alpha. J0: (m p, n) is never formed.
    """

    Xt: torch.Tensor
    y: torch.Tensor
    W0: torch.Tensor
    a: torch.Tensor
    S: torch.Tensor
    G: torch.Tensor
    f0: torch.Tensor
    alpha: torch.Tensor
    W_star: torch.Tensor
    info: SolveInfo
    factor: PSDFactor = field(repr=False)

    def _as64(self, t: torch.Tensor) -> torch.Tensor:
        # Callers may hold float32 weights on an accelerator; the target's math stays float64 here.
        return t.detach().to(dtype=torch.float64, device=self.Xt.device)

    @property
    def target_norm(self) -> float:
        """||W* - W0|| (Frobenius)."""
        return float(torch.linalg.vector_norm(self.W_star - self.W0))

    @property
    def yGy(self) -> float:
        """(y - f0)^T G^-1 (y - f0) = ||W* - W0||^2."""
        return float((self.y - self.f0) @ self.alpha)

    def jvp(self, V: torch.Tensor) -> torch.Tensor:
        """J0^T V: (n,), i.e. <grad f(x_i; W0), V> for V: (m, p); O(n m p)."""
        return _pattern_jvp(self.Xt, self._pattern_weights, self.a, self._as64(V))

    @functools.cached_property
    def _pattern_weights(self) -> torch.Tensor:
        """S as 0/1 in Xt's dtype, made once: multiplying by it gives the same bits as by the bool
        S, without converting S on every call (a run records J0^T V at every recorded step; at
        m = 10^4 the conversion was ~30 % of a record, BENCHMARKS.md)."""
        return self.S.to(self.Xt.dtype)

    def linearized_predict(self, Xt_new: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        """f_L(x; W) = f(x; W0) + <grad f(x; W0), W - W0> for Xt_new: (k, p) augmented, W: (m, p).

        Returns (k,). By positive homogeneity f(x; W0) = <grad f(x; W0), W0>, so this equals
        m^-1/2 sum_r a_r S_r(x) (w_r . x~).
        """
        Xt_new = self._as64(Xt_new)
        S_new = activation_pattern(Xt_new, self.W0)
        return _pattern_jvp(Xt_new, S_new, self.a, self._as64(W))

    def projection_norms(self, V: torch.Tensor) -> tuple[float, float]:
        """(||P0 V||, ||P0perp V||) for V: (m, p), P0 the orthogonal projection onto col(J0).

        With c = G^-1 J0^T V (the stored factorisation of G): ||P0 V||^2 = (J0^T V) . c, and
        ||P0perp V||^2 = ||V||^2 - ||P0 V||^2 by Pythagoras unless that difference is below
        ``PYTHAGORAS_MIN_SHARE`` of ||V||^2; then P0perp V = V - J0 c is formed and its norm taken
        directly (one more product with the pattern). Pythagoras alone would leave ||P0perp V||
        an absolute error of about eps ||V||^2 / ||P0perp V||: a relative error of 1e-2 early in
        arora_fig2's runs, where ||P0perp V|| is 1e-6 and ||V|| is 50.
        """
        V = self._as64(V)
        u = self.jvp(V)
        c = self.factor.solve(u)
        range_sq = max(float(u @ c), 0.0)
        perp_sq = float(torch.sum(V**2)) - range_sq
        if perp_sq < PYTHAGORAS_MIN_SHARE * (perp_sq + range_sq):
            residual = V - _pattern_vjp(self.Xt, self._pattern_weights, self.a, c)
            perp_sq = float(torch.sum(residual**2))
        return math.sqrt(range_sq), math.sqrt(perp_sq)


def _pattern_jvp(
    Xt: torch.Tensor, S: torch.Tensor, a: torch.Tensor, V: torch.Tensor
) -> torch.Tensor:
    """m^-1/2 sum_r a_r S_ir (v_r . x~_i): (n,), for Xt: (n, p), S: (n, m), a: (m,), V: (m, p)."""
    Z = Xt @ V.T  # (n, m)
    Z.mul_(S)
    return Z @ a / math.sqrt(V.shape[0])


def _pattern_vjp(
    Xt: torch.Tensor, S: torch.Tensor, a: torch.Tensor, c: torch.Tensor
) -> torch.Tensor:
    """m^-1/2 a_r sum_i c_i S_ir x~_i: (m, p), for Xt: (n, p), S: (n, m), a: (m,), c: (n,)."""
    # Weighting the (n, p) inputs rather than the (n, m) pattern saves an n x m product.
    weighted_inputs = Xt * c[:, None]
    return (S.T.to(Xt.dtype) @ weighted_inputs) * (a[:, None] / math.sqrt(S.shape[1]))


def min_norm_target(
    Xt: torch.Tensor,
    y: torch.Tensor,
    W0: torch.Tensor,
    a: torch.Tensor,
    *,
    rtol: float = DEFAULT_RTOL,
) -> MinNormTarget:
    """Closed-form linearized min-norm target W* = W0 + J0 G^-1 (y - f0), in float64.

    Xt: (n, p) augmented train inputs, y: (n,), W0: (m, p), a: (m,). Built from the activation
    pattern in O(n m p + n^2 m + n^3) time and O(n m) memory; the Jacobian is never formed.
    A singular G gives the pseudo-inverse (least-squares) solution and a SingularGramWarning.
    """
    Xt, y, W0, a = (t.detach().to(torch.float64) for t in (Xt, y, W0, a))
    n, p = Xt.shape if Xt.ndim == 2 else (-1, -1)
    if (
        Xt.ndim != 2
        or y.shape != (n,)
        or W0.ndim != 2
        or W0.shape[1] != p
        or a.shape != (W0.shape[0],)
    ):
        raise ValueError(
            "need Xt (n, p), y (n,), W0 (m, p), a (m,); got "
            f"{tuple(Xt.shape)}, {tuple(y.shape)}, {tuple(W0.shape)}, {tuple(a.shape)}"
        )
    for name, tensor in (("Xt", Xt), ("y", y), ("W0", W0), ("a", a)):
        if not torch.isfinite(tensor).all():
            raise ValueError(f"{name} contains NaN or infinite entries")
    S = activation_pattern(Xt, W0)
    G = ntk_gram(Xt, S, Xt, S)
    factor = PSDFactor(G, rtol=rtol)
    f0 = _pattern_jvp(Xt, S, a, W0)
    alpha = factor.solve(y - f0)
    W_star = W0 + _pattern_vjp(Xt, S, a, alpha)
    return MinNormTarget(Xt, y, W0, a, S, G, f0, alpha, W_star, factor.info, factor)
