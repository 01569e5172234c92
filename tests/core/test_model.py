import math

import numpy as np
import pytest
import torch

from helpers import reference
from minnorm.core.model import TwoLayerReLU, augment_inputs, init_weights, network_outputs

# First entries of init_weights(3, 2, 1.0, seed=0): torch's CPU normal sampler with our seed.
GOLDEN_W0_ROW0 = [1.1968661073029883, 0.39817886188805013]
GOLDEN_A = [-1.0, 1.0, 1.0]


def test_augment_inputs_appends_ones_only_with_bias():
    X = torch.arange(6, dtype=torch.float64).reshape(3, 2)
    Xt = augment_inputs(X, True)
    assert Xt.shape == (3, 3)
    assert torch.equal(Xt[:, :2], X) and torch.equal(Xt[:, 2], torch.ones(3, dtype=torch.float64))
    assert torch.equal(augment_inputs(X, False), X)
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        augment_inputs(X[0], True)


def test_forward_equals_explicit_sum():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(7, 3, generator=gen, dtype=torch.float64)
    W0, a = init_weights(11, 4, 0.7, seed=2)
    net = TwoLayerReLU(W0, a, bias=True)
    W = net.W.detach()
    expected = torch.tensor(
        [
            sum(a[r] * max(0.0, float(W[r, :3] @ X[i] + W[r, 3])) for r in range(11))
            / math.sqrt(11)
            for i in range(7)
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(net(X).detach(), expected, rtol=0, atol=1e-14)
    np.testing.assert_allclose(
        net(X).detach().numpy(),
        reference.outputs(W0.numpy(), X.numpy(), a.numpy(), True),
        rtol=0,
        atol=1e-14,
    )
    # The module and the functional form are one formula: bit-identical.
    assert torch.equal(net(X).detach(), network_outputs(W, augment_inputs(X, True), a))


def test_only_first_layer_is_trainable():
    net = TwoLayerReLU(*init_weights(5, 2, 1.0, seed=0), bias=False)
    assert [name for name, _ in net.named_parameters()] == ["W"]
    assert "a" in dict(net.named_buffers())
    net(torch.ones(3, 2, dtype=torch.float64)).sum().backward()
    assert net.W.grad is not None and net.W.grad.shape == (5, 2)


def test_init_is_pinned_and_deterministic():
    W0, a = init_weights(3, 2, 1.0, seed=0)
    assert W0[0].tolist() == GOLDEN_W0_ROW0
    assert a.tolist() == GOLDEN_A
    W0_again, a_again = init_weights(3, 2, 1.0, seed=0)
    assert torch.equal(W0, W0_again) and torch.equal(a, a_again)
    assert not torch.equal(init_weights(3, 2, 1.0, seed=1)[0], W0)
    # A different width is a different stream, not a prefix of the same one.
    assert not torch.equal(init_weights(4, 2, 1.0, seed=0)[0][:3], W0)


def test_init_statistics_match_kappa_and_signs():
    kappa, m, p = 0.01, 4000, 5
    W0, a = init_weights(m, p, kappa, seed=3)
    assert W0.dtype == torch.float64 and a.dtype == torch.float64
    # std estimate from N = m p samples has relative standard error 1/sqrt(2N) ~ 0.005: 5 sigma.
    assert abs(float(W0.std()) / kappa - 1) < 5 / math.sqrt(2 * m * p)
    assert set(a.tolist()) == {-1.0, 1.0}
    assert abs(float(a.mean())) < 5 / math.sqrt(m)


def test_init_rejects_bad_arguments():
    with pytest.raises(ValueError, match="width"):
        init_weights(0, 2, 1.0, seed=0)
    with pytest.raises(ValueError, match="kappa"):
        init_weights(3, 2, -1.0, seed=0)
    with pytest.raises(ValueError, match="a \\(m,\\)"):
        TwoLayerReLU(torch.zeros(3, 2), torch.zeros(4), bias=False)
