"""Memory needed by a run and memory available on a device, checked before anything large is
allocated."""

from __future__ import annotations

import ctypes
import os

import torch

# Bytes per element of the training dtypes (the config's names).
ITEMSIZE: dict[str, int] = {"float32": 4, "float64": 8}
# Only this share of the free memory is planned for: the estimate ignores the allocator's
# fragmentation, the Python process itself (~0.5 GB with torch and Lightning) and other jobs.
MEMORY_HEADROOM = 0.8


class RunTooLargeError(MemoryError):
    """A run whose estimated peak memory exceeds what the device has free."""


def estimate_run_bytes(n: int, m: int, p: int, dtype: str | torch.dtype, n_test: int) -> int:
    """Estimated peak bytes of a run with n train points, width m, weight dim p, n_test test points.

    Training (``dtype``): the (n, m) pre-activations, their relu, the backward's masked residuals
    and mask (4 n m) plus W, its gradient and the chunk-start copy. Recording and the target
    (float64): the pre-activations of the train or the test points (one at a time, the readout
    in place; 2 max(n, n_test) m for a temporary beside them), the activation patterns at init
    (bool, (n + n_test) m), ~10 (m, p) weight-sized arrays (W0, W*, differences) and the (n, n) /
    (n_test, n) kernel matrices. Within 2x of the measured peak RSS of a training job
    (tests/workflow/test_memory_check.py).
    """
    recording = (
        8 * (2 * max(n, n_test) * m + 10 * m * p + 4 * n * n + 2 * n_test * n) + (n + n_test) * m
    )
    return int(training_bytes(n, m, p, dtype) + recording)


def training_bytes(n: int, m: int, p: int, dtype: str | torch.dtype) -> int:
    """The training part of ``estimate_run_bytes``: what each further run of a batch adds to the GD
    step."""
    itemsize = ITEMSIZE[dtype] if isinstance(dtype, str) else dtype.itemsize
    return int(itemsize * (4 * n * m + 4 * m * p))


def estimate_batch_bytes(
    n: int, m: int, p: int, dtype: str | torch.dtype, n_test: int, runs: int = 1
) -> int:
    """Estimated peak bytes of ``runs`` runs trained side by side (a seed batch): one run's
    ``estimate_run_bytes`` plus, for every further run, its share of the GD step
    (``training_bytes``) and the references it keeps for recording (its initial activation
    patterns, (n + n_test) m flags, and W0, W*, the weights: 4 (m, p) float64 arrays). The
    recording itself works on one run at a time."""
    per_run = training_bytes(n, m, p, dtype) + (n + n_test) * m + 8 * 4 * m * p
    return estimate_run_bytes(n, m, p, dtype, n_test) + (max(int(runs), 1) - 1) * per_run


# The GD step of one batch plans for at most this many bytes (``batch_size_limit``): a job's runs
# train in batches of this size, so a batch never needs much more memory than its widest run, while
# the batches of small widths hold dozens of runs (56 at n = 100, m = 10^4, p = 6, float64).
BATCH_TRAINING_BYTES = 2 * 2**30


def batch_size_limit(n: int, m: int, p: int, dtype: str | torch.dtype) -> int:
    """The most runs of this size one batch trains side by side (at least 1)."""
    return max(1, BATCH_TRAINING_BYTES // training_bytes(n, m, p, dtype))


def available_bytes(device: torch.device) -> int:
    """Free memory of ``device``: torch.cuda.mem_get_info on a GPU, MemAvailable on the host."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def check_fits(
    n: int, m: int, p: int, dtype: str, n_test: int, device: torch.device, runs: int = 1
) -> int:
    """Raise ``RunTooLargeError`` (with the sizes) if the estimate for ``runs`` runs trained side by
    side (``estimate_batch_bytes``) exceeds the free memory."""
    needed = estimate_batch_bytes(n, m, p, dtype, n_test, runs)
    free = available_bytes(device)
    if needed > MEMORY_HEADROOM * free:
        several = f"{runs} runs side by side, " if runs > 1 else ""
        raise RunTooLargeError(
            f"run too large for {device}: estimated peak {needed / 2**30:.2f} GiB "
            f"({several}n={n}, width={m}, p={p}, n_test={n_test}, {dtype}), "
            f"but only {free / 2**30:.2f} GiB "
            f"are available ({MEMORY_HEADROOM:.0%} of it is used for planning)"
        )
    return needed


# glibc mallopt(3) parameter numbers (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def retain_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory in the process instead of returning it to the OS.

    Each eager or matrix-product GD step allocates and frees (n, m) buffers of megabytes. By
    default glibc serves such sizes with fresh mmap pages or trims them off the heap when freed,
    so every step page-faults them in again (kernel time; measured 2.3x slower steps at n = 1000,
    m = 10^4, see BENCHMARKS.md). Raising both thresholds to the largest value mallopt takes makes
    freed buffers reusable at the cost of keeping the process at its peak resident size, which a
    training job reaches anyway. Call once, early, in a process that trains. Returns False (and
    changes nothing) where the C library is not glibc.
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    largest = 2**31 - 1  # mallopt takes a C int
    return bool(mallopt(_M_MMAP_THRESHOLD, largest)) and bool(mallopt(_M_TRIM_THRESHOLD, largest))
