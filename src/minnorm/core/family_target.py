"""The linearised min-norm target theta* for any registered activation, with the output layer
trained or fixed, and the distances of an iterate theta to it.

theta = (W, a) when the output layer is trained, W alone otherwise. theta* = argmin
||theta - theta0|| subject to f_L(x_i; theta) = y_i, in closed form theta* - theta0 = J0 G^-1
(y - f0) with ||theta* - theta0||^2 = (y - f0)^T G^-1 (y - f0) (Satpathi & Srikant 2021, for
W alone and relu). For relu with a fixed this is ``minnorm.core.target.min_norm_target``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from minnorm.core.activations import Activation
from minnorm.core.family_network import (
    empirical_ntk_gram,
    linearized_outputs,
    parameter_jvp,
    parameter_vjp,
)
from minnorm.core.target import DEFAULT_RTOL, PYTHAGORAS_MIN_SHARE, PSDFactor, SolveInfo


@dataclass(frozen=True)
class ThetaDistances:
    """Distances of an iterate theta over all trained parameters (Frobenius / Euclidean).

    ``to_target`` = ||theta - theta*||, split by the Lyapunov functions of Satpathi & Srikant into
    ``to_target_range`` = ||P0 (theta - theta*)|| and ``to_target_perp`` = ||P0perp (theta -
    theta*)|| (P0 the orthogonal projection onto col(J0)); ``from_init`` = ||theta - theta0||.
    """

    to_target: float
    to_target_range: float
    to_target_perp: float
    from_init: float


@dataclass(eq=False)
class FamilyTarget:
    """theta* and the linearisation at theta0 for one activation and ``train_output`` setting.

    Xt: (n, p) augmented train inputs, y: (n,), W0: (m, p), a0: (m,), Z0: (n, m) = Xt W0^T,
    G: (n, n) = J0^T J0, f0: (n,), alpha: (n,) = G^-1 (y - f0), W_star: (m, p), a_star: (m,)
    when the output layer is trained, else None (a stays a0). All float64.
    """

    Xt: torch.Tensor
    y: torch.Tensor
    W0: torch.Tensor
    a0: torch.Tensor
    activation: Activation
    train_output: bool
    Z0: torch.Tensor
    G: torch.Tensor
    f0: torch.Tensor
    alpha: torch.Tensor
    W_star: torch.Tensor
    a_star: torch.Tensor | None
    info: SolveInfo
    factor: PSDFactor = field(repr=False)

    def _as64(self, t: torch.Tensor) -> torch.Tensor:
        return t.detach().to(dtype=torch.float64, device=self.Xt.device)

    def _output_part(self, a: torch.Tensor | None) -> torch.Tensor | None:
        """a as float64 when the output layer is trained (a0 if None); refuses a != a0 if fixed."""
        if not self.train_output:
            if a is not None and not torch.equal(self._as64(a), self.a0):
                raise ValueError("the output layer is fixed: a must equal a0")
            return None
        return self.a0 if a is None else self._as64(a)

    @property
    def target_norm(self) -> float:
        """||theta* - theta0||."""
        squared = torch.sum((self.W_star - self.W0) ** 2)
        if self.a_star is not None:
            squared = squared + torch.sum((self.a_star - self.a0) ** 2)
        return math.sqrt(float(squared))

    @property
    def yGy(self) -> float:
        """(y - f0)^T G^-1 (y - f0) = ||theta* - theta0||^2."""
        return float((self.y - self.f0) @ self.alpha)

    def jvp(self, dW: torch.Tensor, da: torch.Tensor | None = None) -> torch.Tensor:
        """J0^T (dW, da): (n,), for dW: (m, p), da: (m,) (ignored, may be None, if a is fixed)."""
        da64 = None if (da is None or not self.train_output) else self._as64(da)
        return parameter_jvp(self.Xt, self.Z0, self.a0, self.activation, self._as64(dW), da64)

    def linearized_predict(
        self, Xt_new: torch.Tensor, W: torch.Tensor, a: torch.Tensor | None = None
    ) -> torch.Tensor:
        """f_L(x; theta): (k,) for Xt_new: (k, p) augmented, W: (m, p), a: (m,) or None (a0)."""
        return linearized_outputs(
            self._as64(Xt_new), self.W0, self.a0, self.activation, self._as64(W),
            self._output_part(a),
        )  # fmt: skip

    def projection_norms(
        self, dW: torch.Tensor, da: torch.Tensor | None = None
    ) -> tuple[float, float]:
        """(||P0 V||, ||P0perp V||) for V = (dW, da), dW: (m, p), da: (m,) or None.

        With c = G^-1 J0^T V (the stored factorisation of G): ||P0 V||^2 = (J0^T V) . c, and
        ||P0perp V|| by Pythagoras, or as the norm of V - J0 c where Pythagoras would lose
        digits (below ``PYTHAGORAS_MIN_SHARE``; ``MinNormTarget.projection_norms``). With the
        output layer fixed V is dW alone.
        """
        dW = self._as64(dW)
        da64 = None if (da is None or not self.train_output) else self._as64(da)
        u = self.jvp(dW, da64)
        c = self.factor.solve(u)
        range_sq = max(float(u @ c), 0.0)
        total_sq = float(torch.sum(dW**2)) + (0.0 if da64 is None else float(torch.sum(da64**2)))
        perp_sq = total_sq - range_sq
        if perp_sq < PYTHAGORAS_MIN_SHARE * total_sq:
            pW, pa = parameter_vjp(
                self.Xt, self.Z0, self.a0, self.activation, c, train_output=da64 is not None
            )
            perp_sq = float(torch.sum((dW - pW) ** 2))
            if da64 is not None and pa is not None:
                perp_sq += float(torch.sum((da64 - pa) ** 2))
        return math.sqrt(range_sq), math.sqrt(perp_sq)

    def distances(self, W: torch.Tensor, a: torch.Tensor | None = None) -> ThetaDistances:
        """``ThetaDistances`` of theta = (W, a): W: (m, p), a: (m,) or None (a0; a fixed)."""
        W = self._as64(W)
        a64 = self._output_part(a)
        dW = W - self.W_star
        da = None if a64 is None or self.a_star is None else a64 - self.a_star
        range_norm, perp_norm = self.projection_norms(dW, da)
        to_target_sq = float(torch.sum(dW**2)) + (0.0 if da is None else float(torch.sum(da**2)))
        from_init_sq = float(torch.sum((W - self.W0) ** 2))
        if a64 is not None:
            from_init_sq += float(torch.sum((a64 - self.a0) ** 2))
        return ThetaDistances(
            math.sqrt(to_target_sq), range_norm, perp_norm, math.sqrt(from_init_sq)
        )

    def linearized_gd_iterate(
        self, lr: float, steps: int, *, residual_scale: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(W, a) after ``steps`` GD steps on the linearised model from theta0: (m, p), (m,) or
        None when a is fixed.

        GD theta <- theta - lr * residual_scale * J0 (f_L - y) on f_L keeps theta - theta0 in
        col(J0) and the residual r_k = (I - lr s G)^k (y - f0), so theta_lin(k) - theta0 =
        J0 G^-1 (I - (I - lr s G)^k) (y - f0), through the eigenpairs of G (an eigenvalue 0
        contributes its limit lr s k). ``residual_scale`` s: 1 for the half_sum loss, 2 / n for
        mean (``minnorm.training.gd_step.residual_scale``). As steps -> infinity (lr s
        lambda_max < 2) this tends to theta*; ``distances`` to it separate the width's effect on
        GD from the not yet converged directions of small eigenvalues.
        """
        if steps < 0 or not lr > 0:
            raise ValueError(f"need steps >= 0 and lr > 0, got {steps} and {lr}")
        eigenvalues, eigenvectors = torch.linalg.eigh((self.G + self.G.T) / 2)
        x = lr * residual_scale * eigenvalues
        # 1 - (1 - x)^k without cancellation for 0 < x < 1; the power itself for x >= 1.
        below_one = torch.where(x < 1, x, torch.zeros_like(x))
        decayed = torch.where(
            x < 1, -torch.expm1(steps * torch.log1p(-below_one)), 1 - torch.pow(1 - x, steps)
        )
        tiny = eigenvalues.abs() <= 1e-300
        gain = torch.where(
            tiny, lr * residual_scale * steps, decayed / torch.where(tiny, 1.0, eigenvalues)
        )
        c = eigenvectors @ (gain * (eigenvectors.T @ (self.y - self.f0)))
        dW, da = parameter_vjp(
            self.Xt, self.Z0, self.a0, self.activation, c, train_output=self.train_output
        )
        return self.W0 + dW, None if da is None else self.a0 + da


def family_min_norm_target(
    Xt: torch.Tensor,
    y: torch.Tensor,
    W0: torch.Tensor,
    a0: torch.Tensor,
    activation: Activation,
    *,
    train_output: bool,
    rtol: float = DEFAULT_RTOL,
) -> FamilyTarget:
    """theta* = theta0 + J0 G^-1 (y - f0) from Z0 = Xt W0^T, in float64.

    Xt: (n, p) augmented train inputs, y: (n,), W0: (m, p), a0: (m,). O(n m p + n^2 m + n^3) time
    and O(n m) memory; the Jacobian is never formed. A singular G gives the pseudo-inverse
    (least-squares) solution and a ``minnorm.core.target.SingularGramWarning``.
    """
    Xt, y, W0, a0 = (t.detach().to(torch.float64) for t in (Xt, y, W0, a0))
    n, p = Xt.shape if Xt.ndim == 2 else (-1, -1)
    if y.shape != (n,) or W0.ndim != 2 or W0.shape[1] != p or a0.shape != (W0.shape[0],):
        raise ValueError(
            "need Xt (n, p), y (n,), W0 (m, p), a0 (m,); got "
            f"{tuple(Xt.shape)}, {tuple(y.shape)}, {tuple(W0.shape)}, {tuple(a0.shape)}"
        )
    for name, tensor in (("Xt", Xt), ("y", y), ("W0", W0), ("a0", a0)):
        if not torch.isfinite(tensor).all():
            raise ValueError(f"{name} contains NaN or infinite entries")
    Z0 = Xt @ W0.T
    G = empirical_ntk_gram(Xt, Z0, Xt, Z0, a0, activation, train_output=train_output)
    factor = PSDFactor(G, rtol=rtol)
    f0 = activation.value(Z0) @ a0 / math.sqrt(W0.shape[0])
    alpha = factor.solve(y - f0)
    dW, da = parameter_vjp(Xt, Z0, a0, activation, alpha, train_output=train_output)
    a_star = None if da is None else a0 + da
    return FamilyTarget(
        Xt,
        y,
        W0,
        a0,
        activation,
        train_output,
        Z0,
        G,
        f0,
        alpha,
        W0 + dW,
        a_star,
        factor.info,
        factor,
    )
