import math

import numpy as np
import pytest
import torch

from helpers import reference
from minnorm.core.activations import (
    ACTIVATIONS,
    DEFAULT_LEAK,
    ActivationSpec,
    get_activation,
)

# float64 evaluations of the same elementary function by two libraries: a few ulp apart.
ELEMENTWISE_ATOL = 1e-14


def grid() -> torch.Tensor:
    """Pre-activations from -40 to 40, away from the kink at 0 (where s' is a convention)."""
    z = torch.linspace(-40.0, 40.0, 8001, dtype=torch.float64)
    return z[z.abs() > 1e-6]


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_values_and_derivatives_match_the_numpy_reference(name):
    act = get_activation(name, leak=0.2)
    s, ds = reference.activation_np(name, 0.2)
    z = grid()
    np.testing.assert_allclose(act.value(z).numpy(), s(z.numpy()), rtol=1e-15, atol=0)
    np.testing.assert_allclose(
        act.derivative(z).numpy(), ds(z.numpy()), rtol=0, atol=ELEMENTWISE_ATOL
    )


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_derivative_is_autograds_derivative_of_the_value(name):
    act = get_activation(name, leak=0.2)
    z = grid().requires_grad_(True)
    (autograd,) = torch.autograd.grad(act.value(z).sum(), z)
    torch.testing.assert_close(act.derivative(z.detach()), autograd, rtol=0, atol=ELEMENTWISE_ATOL)


def test_derivatives_at_the_kink_follow_autograd():
    zero = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    for name in ("relu", "leaky_relu"):
        act = get_activation(name, leak=0.3)
        (autograd,) = torch.autograd.grad(act.value(zero).sum(), zero)
        assert float(act.derivative(zero.detach())) == float(autograd)
    assert float(get_activation("leaky_relu", leak=0.3).derivative(zero.detach())) == 0.3


def test_smooth_derivatives_keep_their_relative_accuracy_far_out():
    z = torch.tensor([30.0, 300.0, 800.0], dtype=torch.float64)
    # cosh^-2 against 4 e^-2z (1 - 2 e^-2z): 1 - tanh^2 would be exactly 0 at z = 30.
    tanh_prime = get_activation("tanh").derivative(z)
    assert float(tanh_prime[0]) == pytest.approx(4 * math.exp(-60), rel=1e-13)
    assert float(tanh_prime[2]) == 0.0
    softplus = get_activation("softplus").value(z)
    assert float(softplus[0]) == pytest.approx(30.0 + math.log1p(math.exp(-30.0)), rel=1e-15)
    assert softplus[1:].tolist() == [300.0, 800.0]  # no overflow, no threshold


def test_leaky_relu_at_zero_slope_is_relu_bit_for_bit():
    z = torch.randn(1000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    relu, leaky = get_activation("relu"), get_activation("leaky_relu", leak=0.0)
    assert torch.equal(relu.value(z), leaky.value(z))
    assert torch.equal(relu.derivative(z), leaky.derivative(z))
    # And at slope 1 it is the identity.
    linear = get_activation("leaky_relu", leak=1.0)
    assert torch.equal(linear.value(z), z)
    assert torch.equal(linear.derivative(z), torch.ones_like(z))


def test_get_activation_binds_leak_only_where_it_matters():
    assert get_activation("leaky_relu").leak == DEFAULT_LEAK == 0.01
    assert get_activation("tanh", leak=0.5) == get_activation("tanh")
    assert get_activation("tanh", leak=0.5).leak == 0.0
    assert get_activation("leaky_relu", leak=0.5) != get_activation("leaky_relu")
    with pytest.raises(ValueError, match="unknown activation 'gelu'; known: relu, leaky_relu"):
        get_activation("gelu")
    with pytest.raises(ValueError, match="leak must be a finite number"):
        get_activation("leaky_relu", leak=math.nan)


def test_registry_entries_are_complete():
    assert set(ACTIVATIONS) == {"relu", "leaky_relu", "softplus", "tanh", "erf"}
    for name, spec in ACTIVATIONS.items():
        assert spec.name == name
        closed = spec.gradient_kernel is not None and spec.output_kernel is not None
        assert closed or spec.analytic_half_width is not None, name
        assert spec.uses_leak == (name == "leaky_relu")
    with pytest.raises(ValueError, match="needs analytic_half_width"):
        ActivationSpec("gelu", torch.relu, torch.relu, None, None, None)  # type: ignore[arg-type]


def test_fast_smooth_forms_agree_with_torchs_functions() -> None:
    # The registry writes tanh, its derivative and softplus through exp/expm1 of -|z| (vectorised
    # by torch.compile); they must agree with torch's own functions to rounding, relative to the
    # value in the tails.
    from minnorm.core.activations import get_activation

    z = torch.linspace(-40, 40, 200_001, dtype=torch.float64)
    tanh, softplus = get_activation("tanh"), get_activation("softplus")
    assert float((tanh.value(z) - torch.tanh(z)).abs().max()) <= 4.5e-16
    near_zero = z.abs() < 1e-3
    rel = (tanh.value(z[near_zero]) / torch.tanh(z[near_zero]) - 1).abs()
    assert float(rel[torch.isfinite(rel)].max()) <= 4.5e-16
    reference = torch.cosh(z).pow(-2)
    assert float(((tanh.derivative(z) - reference).abs() / reference).max()) <= 2e-15
    exact = torch.logaddexp(z, torch.zeros_like(z))
    assert float(((softplus.value(z) - exact).abs() / exact).max()) <= 4.5e-16
    assert float(tanh.value(torch.tensor([0.0], dtype=torch.float64))) == 0.0
