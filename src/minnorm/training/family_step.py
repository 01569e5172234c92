"""The GD step of every network but the papers' one (issue 29): any registered activation, the
output layer fixed or trained. The papers' network (relu, a fixed) keeps the fused C++ and
compiled steps of ``gd_step`` untouched; ``gd_step.select_step`` chooses between them.

With Z = X~ W^T, S = s(Z), f = S a / sqrt(m), r = scale (f - y) (``residual_scale``):
dL/dW = ((s'(Z) * r)^T X~) * a / sqrt(m), dL/da = S^T r / sqrt(m), L = scale/2 sum (f - y)^2,
each run of a batch on its own.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable

import torch

from minnorm.core.activations import ElementwiseFn
from minnorm.core.family_network import TwoLayerNet
from minnorm.core.model import augment_inputs
from minnorm.training import family_kernel, streamed_kernel
from minnorm.training.gradient_formulas import (
    STREAMED_INDUCTOR_OPTIONS,
    STREAMED_MAX_P,
    residual_scale,
)

_log = logging.getLogger(__name__)
# Graphs dynamo may keep for the compiled family step in one process.
RECOMPILE_LIMIT = 64
# Inductor's first compilation imports modules that use a deprecated torch.jit API (as in gd_step).
_INDUCTOR_IMPORT_WARNING = r"`torch\.jit\.script_method` is deprecated"
# Reasons the family kernel could not be loaded, already warned about in this process.
_warned: set[str] = set()


def family_gradient(
    W: torch.Tensor,
    a: torch.Tensor,
    Xt: torch.Tensor,
    y: torch.Tensor,
    scale: torch.Tensor,
    *,
    value: ElementwiseFn,
    derivative: ElementwiseFn,
    leak: float,
    train_output: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """(dL/dW: (..., m, p), dL/da: (..., m) or None when a is fixed, L: (...)).

    W: (m, p) or (S, m, p), a: (m,) or (S, m), Xt: (n, p) augmented inputs, y: (n,) or (S, n),
    scale: 0-d tensor from ``residual_scale``; ``value``/``derivative``: the activation's s and s'
    (``ActivationSpec.value``/``.derivative``) with its ``leak``.
    """
    inv_sqrt_m = W.shape[-2] ** -0.5
    Z = Xt @ W.mT  # (..., n, m)
    S = value(Z, leak)
    f = (S @ a[..., None]).squeeze(-1) * inv_sqrt_m
    err = f - y
    r = err * scale
    back = derivative(Z, leak) * r[..., None]
    grad_W = (back.mT @ Xt) * (a * inv_sqrt_m)[..., None]
    grad_a = (S.mT @ r[..., None]).squeeze(-1) * inv_sqrt_m if train_output else None
    return grad_W, grad_a, 0.5 * scale * torch.sum(err * err, -1)


def family_streamed_gradient(
    Wt: torch.Tensor,
    a: torch.Tensor,
    Xt: torch.Tensor,
    y: torch.Tensor,
    scale: torch.Tensor,
    *,
    value: ElementwiseFn,
    derivative: ElementwiseFn,
    leak: float,
    train_output: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """``family_gradient`` for one run and small p, written (as
    ``gradient_formulas.streamed_gradient`` for relu) so that, compiled, it never stores an
    (n, m) matrix: Z = Xt W^T as p broadcast products, one loop for f (two points at a time), a
    second that recomputes Z and reduces over n for each neuron.

    Wt: (p, m) contiguous (W transposed), a: (m,), Xt: (n, p), y: (n,), scale: 0-d. Returns
    (dL/dW: (m, p) as a transposed view of a (p, m) tensor, dL/da: (m,) or None, L: 0-d).
    Eager it is slow; it is meant to be compiled.
    """
    p, m = Wt.shape
    n = Xt.shape[0]

    def preactivations(X: torch.Tensor) -> torch.Tensor:
        Z = X[:, 0, None] * Wt[0, None, :]
        for k in range(1, p):
            Z = Z + X[:, k, None] * Wt[k, None, :]
        return Z

    c = a * m**-0.5

    def outputs(X: torch.Tensor) -> torch.Tensor:
        return (value(preactivations(X), leak) * c[None, :]).sum(-1)

    pairs = n // 2
    f = torch.stack([outputs(Xt[0 : 2 * pairs : 2]), outputs(Xt[1 : 2 * pairs : 2])], -1)
    f = f.reshape(2 * pairs)
    if n % 2:
        f = torch.cat([f, outputs(Xt[n - 1 :])], -1)
    err = f - y
    r = err * scale
    Z = preactivations(Xt)
    back = derivative(Z, leak) * r[:, None]
    grad_t = torch.stack([(back * Xt[:, k, None]).sum(-2) * c for k in range(p)], -2)
    grad_a = (value(Z, leak) * r[:, None]).sum(-2) * m**-0.5 if train_output else None
    return grad_t.mT, grad_a, 0.5 * scale * torch.sum(err * err, -1)


class FamilyStep:
    """The GD step of a ``TwoLayerNet`` on its fixed full batch X: (n, d), y: (n,) or (S, n).

    Called like every ``gd_step.GradientStep`` with W, it returns (dL/dW, L) and, when the output
    layer is trained, stores dL/da in ``model.a.grad`` for the optimizer, which steps W and a
    together. ``compiled``, in float64 with one torch thread (a training job) on a CPU whose torch
    capability is AVX-512, where ``family_kernel.supports`` the network: the C++ kernel
    ``family_kernel.FamilyKernel`` (``cpp-family-avx512``; if it can be neither loaded nor built,
    one log warning says why and the compiled formula follows). Otherwise ``compiled``: on the
    CPU with p <= ``STREAMED_MAX_P``, ``family_streamed_gradient`` compiled with the streamed
    step's inductor options (``compiled-family-streamed``; W laid out transposed by
    ``lay_out``), else ``family_gradient`` compiled (``compiled-family``); if compilation
    fails, a log warning and the plain formula (``uncompiled-family``). Not ``compiled``: the
    plain torch formula (``eager-family``, the ``step_impl: eager`` choice). The runs of a seed
    batch go one by one through the graph (or the kernel) each has alone, so a run's iterates do
    not depend on its batch.
    ``threads`` and ``isa`` stand in for ``torch.get_num_threads()`` and
    ``streamed_kernel.cpu_isa()`` (tests, benchmarks).
    """

    def __init__(
        self,
        model: TwoLayerNet,
        X: torch.Tensor,
        y: torch.Tensor,
        loss: str,
        *,
        compiled: bool,
        threads: int | None = None,
        isa: str | None = None,
    ) -> None:
        self.model = model
        self.Xt = augment_inputs(X, model.bias).contiguous()
        self.y = y
        self.scale = torch.tensor(residual_scale(loss, X.shape[0]), dtype=X.dtype, device=X.device)
        act = model.activation
        self._plain = functools.partial(
            family_gradient,
            value=act.spec.value,
            derivative=act.spec.derivative,
            leak=act.leak,
            train_output=model.train_output,
        )
        # One graph per (activation, train_output, shape); dynamo keeps 8 per function by default,
        # fewer than a process training several families needs (as in gd_step.CompiledStep).
        torch._dynamo.config.recompile_limit = max(
            torch._dynamo.config.recompile_limit, RECOMPILE_LIMIT
        )
        self.streamed = compiled and X.device.type == "cpu" and self.Xt.shape[1] <= STREAMED_MAX_P
        self._fn: Callable[..., tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]]
        self._kernel = self._family_kernel(X, threads, isa) if self.streamed else None
        if self._kernel is not None:
            self._fn, self.name = self._kernel, f"cpp-family-{family_kernel.ISA}"
        elif self.streamed:
            formula = functools.partial(
                family_streamed_gradient,
                value=act.spec.value,
                derivative=act.spec.derivative,
                leak=act.leak,
                train_output=model.train_output,
            )
            self._fn = torch.compile(formula, fullgraph=True, options=STREAMED_INDUCTOR_OPTIONS)
            self.name = "compiled-family-streamed"
        elif compiled:
            self._fn = torch.compile(self._plain, fullgraph=True)
            self.name = "compiled-family"
        else:
            self._fn, self.name = self._plain, "eager-family"
        self._first_call = compiled and self._kernel is None

    def _family_kernel(
        self, X: torch.Tensor, threads: int | None, isa: str | None
    ) -> family_kernel.FamilyKernel | None:
        """The C++ kernel where it applies and can be loaded, else None (one log warning per
        reason and process when it applies but cannot be loaded)."""
        threads = torch.get_num_threads() if threads is None else threads
        isa = streamed_kernel.cpu_isa() if isa is None else isa
        n, p = self.Xt.shape
        model = self.model
        if not (
            X.dtype == torch.float64
            and threads == 1
            and isa == family_kernel.ISA
            and family_kernel.supports(
                model.activation.name, n, model.W.shape[-2], p, model.train_output
            )
        ):
            return None
        try:
            return family_kernel.FamilyKernel(
                model.activation.name,
                p,
                train_output=model.train_output,
                leak=model.activation.leak,
            )
        except streamed_kernel.KernelUnavailable as exc:
            if str(exc) not in _warned:
                _warned.add(str(exc))
                _log.warning(
                    "the C++ family kernel cannot be used (%s); the GD steps are "
                    "compiled-family-streamed instead",
                    exc,
                )
            return None

    def lay_out(self, W: torch.nn.Parameter) -> None:
        """The streamed formula reads W transposed: W stored as the transpose of a contiguous
        (..., p, m) tensor (same values), so no step copies it; nothing to do otherwise."""
        if self.streamed:
            with torch.no_grad():
                W.data = W.data.mT.contiguous().mT

    def __call__(self, W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if W is not self.model.W:
            raise ValueError("the family step is taken at the model's own parameter W")
        W, a = W.detach(), self.model.a.detach()
        with torch.no_grad():
            if W.ndim == 2:
                grad_W, grad_a, value = self._gradient(W, a, self.y)
            else:
                # A seed batch: each run through the graph it has alone (a batched product
                # would sum in another order), so a run's iterates do not depend on its batch.
                parts = [self._gradient(W[s], a[s], self.y[s]) for s in range(W.shape[0])]
                grad_W = torch.stack([part[0] for part in parts])
                value = torch.stack([part[2] for part in parts])
                grads_a = [part[1] for part in parts if part[1] is not None]
                grad_a = torch.stack(grads_a) if grads_a else None
        if grad_a is not None:
            self.model.a.grad = grad_a
        return grad_W, value

    def _gradient(
        self, W: torch.Tensor, a: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        if self._kernel is not None:
            return self._kernel(W.mT.contiguous(), a.contiguous(), self.Xt, y.contiguous(),
                                float(self.scale))  # fmt: skip
        args = (W.mT.contiguous() if self.streamed else W, a, self.Xt, y, self.scale)
        if not self._first_call:
            return self._fn(*args)
        self._first_call = False
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings(
                    "ignore", message=_INDUCTOR_IMPORT_WARNING, category=DeprecationWarning
                )
                return self._fn(*args)
        except Exception as exc:  # inductor raises many types; all mean "cannot compile here"
            _log.warning("torch.compile of the family GD step failed (%s); plain formula", exc)
            self._fn, self.name, self.streamed = self._plain, "uncompiled-family", False
            return self._fn(W, a, self.Xt, y, self.scale)
