"""The two-layer ReLU network with fixed output signs, as a plain ``nn.Module``."""

from __future__ import annotations

import math

import torch
from torch import nn

from minnorm.core.seeding import make_generator


def augment_inputs(X: torch.Tensor, bias: bool) -> torch.Tensor:
    """Inputs as the first layer sees them.

    X: (n, d). Returns (n, p) with p = d + 1 (a trailing column of ones) when ``bias``,
    else X itself (p = d).
    """
    if X.ndim != 2:
        raise ValueError(f"X must have shape (n, d), got {tuple(X.shape)}")
    if not bias:
        return X
    ones = torch.ones(X.shape[0], 1, dtype=X.dtype, device=X.device)
    return torch.cat([X, ones], dim=1)


def readout(Z: torch.Tensor, a: torch.Tensor, *, in_place: bool = False) -> torch.Tensor:
    """The output layer: f = m^-1/2 relu(Z) a, for pre-activations Z: (n, m) and signs a: (m,) ->
    (n,);
    for a batch of S networks Z: (S, n, m) and a: (S, m) -> (S, n).

    With ``network_outputs`` this is the network's one forward formula; code that also needs
    Z (the gradient, the activation pattern) computes Z = Xt W^T itself and calls this.
    ``in_place``: overwrite Z with relu(Z) instead of allocating another (n, m) tensor, for a
    caller that does not need Z afterwards (the same f, bit for bit).
    """
    H = torch.relu_(Z) if in_place else torch.relu(Z)
    if a.ndim == 1:
        return H @ a / math.sqrt(Z.shape[-1])
    return (H @ a[..., None]).squeeze(-1) / math.sqrt(Z.shape[-1])


def network_outputs(W: torch.Tensor, Xt: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """f(x_i; W) = m^-1/2 sum_r a_r relu(w_r . x~_i): (n,), for W: (m, p), Xt: (n, p) augmented, a:
    (m,);
    (S, n) for a batch of S networks, W: (S, m, p) and a: (S, m)."""
    return readout(Xt @ W.mT, a)


def init_weights(
    width: int, p: int, kappa: float, *, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Initial first-layer weights and fixed output signs.

    Drawn on the CPU in float64 from ``make_generator("init", seed, width)``, so the same
    (width, seed) gives bit-identical values on every machine; cast/move afterwards.
    Returns W0: (m, p) with entries N(0, kappa^2), and a: (m,) uniform on {-1, +1}.
    """
    if width < 1:
        raise ValueError(f"width must be a positive integer, got {width}")
    if p < 1:
        raise ValueError(f"input dimension p must be positive, got {p}")
    if not (kappa > 0 and math.isfinite(kappa)):
        raise ValueError(f"kappa must be a positive finite number, got {kappa}")
    generator = make_generator("init", seed, width)
    W0 = torch.randn(width, p, generator=generator, dtype=torch.float64) * kappa
    bits = torch.randint(0, 2, (width,), generator=generator, dtype=torch.int64)
    a = (2 * bits - 1).to(torch.float64)
    return W0, a


class TwoLayerReLU(nn.Module):
    """f(x; W) = m^-1/2 * sum_r a_r relu(w_r . x~); only W is trainable.

    W0: (m, p) initial weights (copied into the parameter ``W``), a: (m,) output signs
    (a buffer, never trained), ``bias``: whether x~ = (x, 1). A batch of S networks of one width
    (S seeds trained side by side on the same data) has W0: (S, m, p) and a: (S, m); each
    network's outputs depend on its own weights only.
    """

    a: torch.Tensor  # a buffer (registered in __init__)

    def __init__(self, W0: torch.Tensor, a: torch.Tensor, bias: bool) -> None:
        super().__init__()
        if W0.ndim not in (2, 3) or a.shape != W0.shape[:-1]:
            raise ValueError(
                f"need W0 (m, p) and a (m,), or W0 (S, m, p) and a (S, m); got "
                f"{tuple(W0.shape)} and {tuple(a.shape)}"
            )
        self.bias = bool(bias)
        self.W = nn.Parameter(W0.detach().clone())
        self.register_buffer("a", a.detach().clone().to(dtype=W0.dtype, device=W0.device))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """X: (n, d) -> outputs (n,), or (S, n) for a batch, by ``network_outputs``."""
        return network_outputs(self.W, augment_inputs(X, self.bias), self.a)
