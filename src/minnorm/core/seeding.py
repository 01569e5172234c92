"""Deterministic seeds and torch generators derived from config values only."""

from __future__ import annotations

import zlib

import numpy as np
import torch

# Every key is encoded as three 32-bit words (type tag, low word, high word) and the key count
# goes first, so ("a", 1) and ("a", 1, 0), or a string and the integer equal to its CRC32,
# never share entropy (numpy's SeedSequence pads short entropy with zeros).
_TAG_INT = 1
_TAG_STR = 2
_WORD = 0xFFFFFFFF
_MAX_INT_KEY = 2**64
_SEED_MASK = 2**63 - 1  # 63-bit non-negative: fits a signed int64 everywhere (netCDF, torch)

SeedKey = int | str


def _encode_key(key: SeedKey) -> list[int]:
    """Map one key to three 32-bit words; strings go through a fixed CRC32."""
    # bool is an int subclass; a True/False key is almost certainly a mistake in the caller.
    if isinstance(key, bool) or not isinstance(key, (int, str, np.integer)):
        raise TypeError(f"seed keys must be int or str, got {type(key).__name__}: {key!r}")
    if isinstance(key, str):
        return [_TAG_STR, zlib.crc32(key.encode("utf-8")), 0]
    value = int(key)
    if not 0 <= value < _MAX_INT_KEY:
        raise ValueError(f"integer seed keys must lie in [0, 2**64), got {value}")
    return [_TAG_INT, value & _WORD, value >> 32]


def derive_seed(*keys: SeedKey) -> int:
    """Hash ``keys`` (ints and short strings) into a 63-bit non-negative integer seed.

    The same keys give the same seed on every machine, Python and numpy version
    (SeedSequence's hashing is part of numpy's stable API).
    """
    if not keys:
        raise ValueError("derive_seed needs at least one key")
    entropy = [len(keys)]
    for key in keys:
        entropy.extend(_encode_key(key))
    state = np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)
    return int(state[0]) & _SEED_MASK


def make_generator(*keys: SeedKey) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``derive_seed(*keys)``."""
    generator = torch.Generator(device="cpu")
    generator.manual_seed(derive_seed(*keys))
    return generator
