"""The two-layer network with any registered activation, its linearisation in theta = (W, a), and
its empirical NTK Gram, all from the pre-activations Z = X~ W^T without forming a Jacobian.

f(x; W, a) = m^-1/2 sum_r a_r s(w_r . x~). Its gradient at theta0 = (W0, a0) has the blocks
d f / d w_r = m^-1/2 a0_r s'(z_r) x~ and d f / d a_r = m^-1/2 s(z_r); with the output layer
fixed (``train_output=False``) theta is W alone and the second block is absent. J0 stands for the
(parameters x n) matrix of these gradients at the training inputs, column i for x_i.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from minnorm.core.activations import Activation
from minnorm.core.model import augment_inputs


def family_outputs(
    W: torch.Tensor, Xt: torch.Tensor, a: torch.Tensor, activation: Activation
) -> torch.Tensor:
    """f(x_i; W, a) = m^-1/2 sum_r a_r s(w_r . x~_i): (n,), for W: (m, p), Xt: (n, p) augmented,
    a: (m,)."""
    if W.ndim != 2 or Xt.ndim != 2 or W.shape[1] != Xt.shape[1] or a.shape != (W.shape[0],):
        raise ValueError(
            "need W (m, p), Xt (n, p), a (m,); got "
            f"{tuple(W.shape)}, {tuple(Xt.shape)}, {tuple(a.shape)}"
        )
    return activation.value(Xt @ W.T) @ a / math.sqrt(W.shape[0])


def parameter_jvp(
    Xt: torch.Tensor,
    Z0: torch.Tensor,
    a0: torch.Tensor,
    activation: Activation,
    dW: torch.Tensor,
    da: torch.Tensor | None = None,
) -> torch.Tensor:
    """J0^T (dW, da): (n,), the change of f(x_i) along theta - theta0 = (dW, da) to first order.

    Xt: (n, p) augmented inputs, Z0: (n, m) = Xt W0^T, a0: (m,), dW: (m, p), da: (m,) or None
    (a fixed). Entry i: m^-1/2 sum_r [a0_r s'(z_ir) (dw_r . x~_i) + s(z_ir) da_r].
    """
    m = Z0.shape[1]
    result = (activation.derivative(Z0) * (Xt @ dW.T)) @ a0 / math.sqrt(m)
    if da is not None:
        result = result + activation.value(Z0) @ da / math.sqrt(m)
    return result


def parameter_vjp(
    Xt: torch.Tensor,
    Z0: torch.Tensor,
    a0: torch.Tensor,
    activation: Activation,
    c: torch.Tensor,
    *,
    train_output: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """J0 c = sum_i c_i grad f(x_i; theta0): (dW (m, p), da (m,) or None when a is fixed).

    Xt: (n, p), Z0: (n, m), a0: (m,), c: (n,). dw_r = m^-1/2 a0_r sum_i c_i s'(z_ir) x~_i and
    da_r = m^-1/2 sum_i c_i s(z_ir).
    """
    m = Z0.shape[1]
    # Weighting the (n, p) inputs rather than the (n, m) derivatives saves an n x m product.
    dW = (activation.derivative(Z0).T @ (Xt * c[:, None])) * (a0[:, None] / math.sqrt(m))
    da = activation.value(Z0).T @ c / math.sqrt(m) if train_output else None
    return dW, da


def empirical_ntk_gram(
    Xa: torch.Tensor,
    Za: torch.Tensor,
    Xb: torch.Tensor,
    Zb: torch.Tensor,
    a0: torch.Tensor,
    activation: Activation,
    *,
    train_output: bool,
) -> torch.Tensor:
    """grad f(x_a; theta0) . grad f(x_b; theta0): (na, nb), without the Jacobian.

    Xa: (na, p), Xb: (nb, p) augmented inputs, Za = Xa W0^T: (na, m), Zb: (nb, m), a0: (m,).
    (Xa Xb^T) * (s'(Za) diag(a0^2) s'(Zb)^T) / m, plus s(Za) s(Zb)^T / m when the output layer
    is trained; O(na nb (m + p)). G = J0^T J0 is the call with a = b = the training inputs.
    """
    m = Za.shape[1]
    if Za.shape != (Xa.shape[0], m) or Zb.shape != (Xb.shape[0], m) or a0.shape != (m,):
        raise ValueError(
            "need Za (na, m), Zb (nb, m), a0 (m,) for inputs Xa (na, p), Xb (nb, p); got "
            f"{tuple(Za.shape)}, {tuple(Zb.shape)}, {tuple(a0.shape)}, "
            f"{tuple(Xa.shape)}, {tuple(Xb.shape)}"
        )
    Da = activation.derivative(Za)
    Db = Da if Zb is Za else activation.derivative(Zb)
    G = (Xa @ Xb.T) * ((Da * (a0 * a0)) @ Db.T) / m
    if train_output:
        Sa = activation.value(Za)
        Sb = Sa if Zb is Za else activation.value(Zb)
        G = G + Sa @ Sb.T / m
    return G


def linearized_outputs(
    Xt_new: torch.Tensor,
    W0: torch.Tensor,
    a0: torch.Tensor,
    activation: Activation,
    W: torch.Tensor,
    a: torch.Tensor | None = None,
) -> torch.Tensor:
    """f_L(x; theta) = f(x; theta0) + grad f(x; theta0) . (theta - theta0): (k,).

    Xt_new: (k, p) augmented, W0: (m, p), a0: (m,), W: (m, p), a: (m,) or None (a = a0, fixed).
    """
    Z0 = Xt_new @ W0.T
    f0 = activation.value(Z0) @ a0 / math.sqrt(W0.shape[0])
    da = None if a is None else a - a0
    return f0 + parameter_jvp(Xt_new, Z0, a0, activation, W - W0, da)


def family_readout(Z: torch.Tensor, a: torch.Tensor, activation: Activation) -> torch.Tensor:
    """The output layer with any activation: f = m^-1/2 s(Z) a, for Z: (n, m) and a: (m,) -> (n,),
    or a batch of S networks, Z: (S, n, m) and a: (S, m) -> (S, n)."""
    S = activation.value(Z)
    if a.ndim == 1:
        return S @ a / math.sqrt(Z.shape[-1])
    return (S @ a[..., None]).squeeze(-1) / math.sqrt(Z.shape[-1])


class TwoLayerNet(nn.Module):
    """f(x; W, a) = m^-1/2 sum_r a_r s(w_r . x~) for a registered activation s.

    W0: (m, p) initial first-layer weights (the parameter ``W``), a0: (m,) initial output weights,
    a parameter ``a`` when ``train_output`` (GD trains it with W), a buffer otherwise; ``bias``:
    whether x~ = (x, 1). A batch of S networks has W0: (S, m, p) and a0: (S, m). For relu with
    a fixed, ``minnorm.core.model.TwoLayerReLU`` is the papers' network and its fused step.
    """

    a: torch.Tensor

    def __init__(
        self,
        W0: torch.Tensor,
        a0: torch.Tensor,
        bias: bool,
        activation: Activation,
        *,
        train_output: bool,
    ) -> None:
        super().__init__()
        if W0.ndim not in (2, 3) or a0.shape != W0.shape[:-1]:
            raise ValueError(
                f"need W0 (m, p) and a0 (m,), or W0 (S, m, p) and a0 (S, m); got "
                f"{tuple(W0.shape)} and {tuple(a0.shape)}"
            )
        self.bias, self.activation, self.train_output = bool(bias), activation, train_output
        self.W = nn.Parameter(W0.detach().clone())
        a = a0.detach().clone().to(dtype=W0.dtype, device=W0.device)
        if train_output:
            self.a = nn.Parameter(a)
        else:
            self.register_buffer("a", a)

    def trained(self) -> list[nn.Parameter]:
        """The parameters GD updates: [W], or [W, a] when the output layer is trained."""
        return [self.W, self.a] if isinstance(self.a, nn.Parameter) else [self.W]

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """X: (n, d) raw inputs -> outputs (n,), or (S, n) for a batch."""
        return family_readout(augment_inputs(X, self.bias) @ self.W.mT, self.a, self.activation)
