"""The activation registry: each activation s with s', and what its infinite-width kernel needs.

Adding an activation is one ``ActivationSpec`` entry in ``ACTIVATIONS``: its value and
derivative, and either closed forms of both kernel terms (``minnorm.core.closed_form_kernels``)
or, for an activation analytic near the real axis, the half-width of that strip, from which
``minnorm.core.pair_quadrature`` sets its node spacing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional

from minnorm.core.closed_form_kernels import (
    erf_gradient_kernel,
    erf_output_kernel,
    leaky_relu_gradient_kernel,
    leaky_relu_output_kernel,
    relu_gradient_kernel,
    relu_output_kernel,
)

# The default slope of leaky_relu on the negative side (model.leak).
DEFAULT_LEAK = 0.01

# (z, leak) -> s(z) or s'(z), elementwise, same shape and dtype as z.
ElementwiseFn = Callable[[torch.Tensor, float], torch.Tensor]
# (Xa (na, p), Xb (nb, p), kappa, leak) -> (na, nb); see minnorm.core.closed_form_kernels.
KernelTermFn = Callable[[torch.Tensor, torch.Tensor, float, float], torch.Tensor]


@dataclass(frozen=True)
class ActivationSpec:
    """One registry entry.

    ``value``/``derivative``: s and s' (s' at a kink: the right-hand slope for z > 0 only, as
    autograd has it: relu'(0) = 0, leaky_relu'(0) = leak). ``gradient_kernel``/``output_kernel``:
    closed forms of (x . x') E[s'(u) s'(v)] and E[s(u) s(v)], or None for quadrature.
    ``analytic_half_width``: for quadrature, the half-width of the strip around the real axis in
    which s and s' are analytic (the distance to their nearest complex singularity); None when s
    is not smooth, and then both closed forms are required. ``uses_leak``: whether ``leak``
    changes s. ``source``: where the closed forms come from.
    """

    name: str
    value: ElementwiseFn
    derivative: ElementwiseFn
    gradient_kernel: KernelTermFn | None
    output_kernel: KernelTermFn | None
    analytic_half_width: float | None
    uses_leak: bool = False
    source: str = ""

    def __post_init__(self) -> None:
        closed = self.gradient_kernel is not None and self.output_kernel is not None
        if not closed and self.analytic_half_width is None:
            raise ValueError(
                f"activation {self.name!r}: a kernel term without a closed form needs "
                "analytic_half_width for quadrature"
            )


def _relu(z: torch.Tensor, leak: float) -> torch.Tensor:
    return torch.relu(z)


def _relu_derivative(z: torch.Tensor, leak: float) -> torch.Tensor:
    return (z > 0).to(z.dtype)


def _leaky_relu(z: torch.Tensor, leak: float) -> torch.Tensor:
    return functional.leaky_relu(z, leak)


def _leaky_relu_derivative(z: torch.Tensor, leak: float) -> torch.Tensor:
    return torch.where(z > 0, torch.ones_like(z), torch.full_like(z, leak))


def _softplus(z: torch.Tensor, leak: float) -> torch.Tensor:
    # log(1 + e^z) without overflow and without torch's softplus threshold (which returns z
    # itself above z = 20, off by up to 2e-9).
    return torch.logaddexp(z, torch.zeros_like(z))


def _softplus_derivative(z: torch.Tensor, leak: float) -> torch.Tensor:
    return torch.sigmoid(z)


def _tanh(z: torch.Tensor, leak: float) -> torch.Tensor:
    return torch.tanh(z)


def _tanh_derivative(z: torch.Tensor, leak: float) -> torch.Tensor:
    # cosh^-2 rather than 1 - tanh^2, which loses every digit for |z| > 19; overflow gives 0.
    return torch.cosh(z).pow(-2)


def _erf(z: torch.Tensor, leak: float) -> torch.Tensor:
    return torch.erf(z)


def _erf_derivative(z: torch.Tensor, leak: float) -> torch.Tensor:
    return (2 / math.sqrt(math.pi)) * torch.exp(-z * z)


ACTIVATIONS: dict[str, ActivationSpec] = {
    spec.name: spec
    for spec in (
        ActivationSpec(
            "relu",
            _relu,
            _relu_derivative,
            relu_gradient_kernel,
            relu_output_kernel,
            None,
            source="Cho & Saul (2009), arc-cosine kernels of degree 0 and 1",
        ),
        ActivationSpec(
            "leaky_relu",
            _leaky_relu,
            _leaky_relu_derivative,
            leaky_relu_gradient_kernel,
            leaky_relu_output_kernel,
            None,
            uses_leak=True,
            source="s(z) = leak z + (1 - leak) relu(z) and Cho & Saul (2009)",
        ),
        # Poles of the sigmoid and branch points of log(1 + e^z) at z = i pi (2k + 1).
        ActivationSpec("softplus", _softplus, _softplus_derivative, None, None, math.pi),
        # Poles of tanh and cosh^-2 at z = i pi (k + 1/2).
        ActivationSpec("tanh", _tanh, _tanh_derivative, None, None, math.pi / 2),
        # erf is entire; pi / 2 (as for tanh, which it resembles) sets the quadrature spacing used
        # only to check the closed forms (tests/core/test_limit_kernels.py measures it).
        ActivationSpec(
            "erf",
            _erf,
            _erf_derivative,
            erf_gradient_kernel,
            erf_output_kernel,
            math.pi / 2,
            source="Williams (1997), the erf kernel",
        ),
    )
}


@dataclass(frozen=True)
class Activation:
    """A registered activation with its setting bound: ``Activation(ACTIVATIONS[name], leak)``.

    ``leak`` is stored as 0.0 for activations that do not use it, so two equal activations
    compare equal whatever slope a config carried for them.
    """

    spec: ActivationSpec
    leak: float = 0.0

    @property
    def name(self) -> str:
        return self.spec.name

    def value(self, z: torch.Tensor) -> torch.Tensor:
        """s(z), elementwise: any shape."""
        return self.spec.value(z, self.leak)

    def derivative(self, z: torch.Tensor) -> torch.Tensor:
        """s'(z), elementwise: any shape."""
        return self.spec.derivative(z, self.leak)


def get_activation(name: str, *, leak: float = DEFAULT_LEAK) -> Activation:
    """The registered activation ``name`` with slope ``leak`` (used by leaky_relu only)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    spec = ACTIVATIONS[name]
    if not spec.uses_leak:
        return Activation(spec, 0.0)
    if not math.isfinite(leak):
        raise ValueError(f"leak must be a finite number, got {leak}")
    return Activation(spec, float(leak))
