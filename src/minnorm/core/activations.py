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


# The smooth activations are written with exp and expm1 of -|z| (never overflowing), which
# torch.compile vectorises on the CPU: the GD step evaluates them n x m times per step, and these
# forms run 1.5-3x faster there than torch's tanh, cosh and logaddexp (benchmarks/
# bench_families.py), agreeing with them to a few units of 1e-16 (tests/core/test_activations.py).


def _softplus(z: torch.Tensor, leak: float) -> torch.Tensor:
    # log(1 + e^z) = relu(z) + log(1 + e^-|z|): no overflow, and no threshold (torch's softplus
    # returns z itself above z = 20, off by up to 2e-9).
    return torch.relu(z) + torch.log1p(torch.exp(-z.abs()))


def _softplus_derivative(z: torch.Tensor, leak: float) -> torch.Tensor:
    return torch.sigmoid(z)


def _tanh(z: torch.Tensor, leak: float) -> torch.Tensor:
    # tanh|z| = -v / (2 + v) with v = e^(-2|z|) - 1: accurate near 0 (expm1) and for large |z|.
    v = torch.expm1(-2 * z.abs())
    return torch.copysign(-v / (2 + v), z)


def _tanh_derivative(z: torch.Tensor, leak: float) -> torch.Tensor:
    # cosh^-2 = 4u / (1 + u)^2 with u = e^(-2|z|), relative accuracy kept in the tails (where
    # 1 - tanh^2 loses every digit for |z| > 19); underflow gives 0.
    u = torch.exp(-2 * z.abs())
    return 4 * u / ((1 + u) * (1 + u))


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
