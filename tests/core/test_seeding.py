import zlib

import pytest
import torch

from minnorm.core.seeding import derive_seed, make_generator

# Pinned outputs: a change here silently changes every data set and initialisation.
GOLDEN_INIT_SEED = 4915406016449792687  # derive_seed("init", 0, 3)


def test_derive_seed_is_pinned_and_63_bit():
    assert derive_seed("init", 0, 3) == GOLDEN_INIT_SEED
    seeds = [derive_seed("data", s) for s in range(200)]
    assert all(0 <= s < 2**63 for s in seeds)
    assert len(set(seeds)) == 200


def test_derive_seed_separates_streams_and_lengths():
    base = derive_seed("label_noise", 0, 1)
    assert base != derive_seed("label_noise", 1, 0)
    assert base != derive_seed("init", 0, 1)
    # SeedSequence pads with zeros; our encoding must not let a trailing 0 collide.
    assert derive_seed("a", 1) != derive_seed("a", 1, 0)
    assert derive_seed(2**32) != derive_seed(0, 1)
    # A string and the integer equal to its CRC32 are different keys.
    assert derive_seed("init") != derive_seed(zlib.crc32(b"init"))


def test_derive_seed_rejects_bad_keys():
    with pytest.raises(TypeError, match="float"):
        derive_seed("init", 1.5)
    with pytest.raises(TypeError, match="bool"):
        derive_seed(True)
    with pytest.raises(ValueError, match="-3"):
        derive_seed("init", -3)
    with pytest.raises(ValueError, match="at least one"):
        derive_seed()


def test_make_generator_is_reproducible_and_ignores_global_state():
    with torch.random.fork_rng():
        torch.manual_seed(123)
        first = torch.randn(5, generator=make_generator("init", 7, 10), dtype=torch.float64)
        torch.manual_seed(456)
        second = torch.randn(5, generator=make_generator("init", 7, 10), dtype=torch.float64)
    other = torch.randn(5, generator=make_generator("init", 8, 10), dtype=torch.float64)
    assert torch.equal(first, second)
    assert not torch.allclose(first, other)
    assert make_generator("x").initial_seed() == derive_seed("x")
