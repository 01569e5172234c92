"""A persistent, project-local cache of what torch.compile builds, shared by every job on one
machine.

Every training job is a fresh interpreter, and without a cache each one compiles the GD step again
(seconds per job). Inductor can store its compiled FX graphs and AOT-autograd graphs on disk
(``torch._inductor.config.fx_graph_cache`` and ``torch._functorch.config.enable_autograd_cache``,
both on by default) and reuse them in a later process when the traced graph, the input shapes,
dtypes and strides, the inductor settings, the thread count and the torch version are the same:
the cache key is computed by torch from all of these, so a changed formula or width simply adds an
entry. By default the cache lives in ``/tmp/torchinductor_<user>``, which a reboot or a cluster
node's scratch policy empties and which other projects share; ``use_compile_cache`` points it
into the project instead (``.cache/torchinductor`` under the working directory, git-ignored).

Inductor's key does not contain the CPU's instruction set, yet the generated C++ is vectorised for
the CPU that compiled it, so entries are kept in one subfolder per machine type
(``machine_key``): a cluster with several CPU models never loads a kernel built for another. The
key also holds ``ATEN_CPU_CAPABILITY`` where it is set, because inductor vectorises for that
capability instead of the CPU's widest: in torch 2.13 an entry compiled under AVX-512 and loaded
by a process that runs with ``ATEN_CPU_CAPABILITY=avx2`` gives wrong gradients (relative error
about 16 for ``analytic_gradient`` at n = 200, m = 1000, p = 64, float64) and one loaded under
``default`` fails to compile (tests/training/test_compile_cache.py).
The C++ streamed kernel (``streamed_kernel``) is built into the same folder, under
``cpp_extensions/`` (``extension_folder``). Nothing here changes a number: a cached kernel is the
same code as a freshly compiled one.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from pathlib import Path

# The environment variable inductor reads for its cache folder
# (torch._inductor.runtime.cache_dir_utils).
CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
# Default location, relative to the working directory of the job (the project root under Snakemake).
DEFAULT_CACHE_ROOT = Path(".cache") / "torchinductor"
# Subfolder of the cache holding the C++ extensions built with torch.utils.cpp_extension.
EXTENSIONS = "cpp_extensions"


# The environment variable by which torch (ATen's dispatch and inductor's code) is told to use a
# narrower instruction set than the CPU's widest: part of the machine key where it is set.
CAPABILITY_ENV = "ATEN_CPU_CAPABILITY"


def machine_key() -> str:
    """12 hex digits naming this machine type: architecture, CPU model and instruction-set flags
    (from /proc/cpuinfo where it exists), ``ATEN_CPU_CAPABILITY`` where it is set, and the torch
    version. Without that variable the key is what it was before it was added, so existing
    caches stay valid."""
    parts = [platform.machine(), platform.system()]
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = platform.processor()
    for line in cpuinfo.splitlines():
        key = line.split(":", 1)[0].strip()
        if key in ("model name", "flags", "Features", "CPU part"):
            parts.append(line.strip())
            if len(parts) > 6:  # the first core's lines are enough
                break
    capability = os.environ.get(CAPABILITY_ENV, "").strip().lower()
    if capability:
        parts.append(f"{CAPABILITY_ENV}={capability}")
    try:
        from importlib.metadata import version

        parts.append(version("torch"))
    except Exception:  # torch not installed as a distribution: the key still separates CPUs
        pass
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def use_compile_cache(root: Path | str = DEFAULT_CACHE_ROOT) -> Path:
    """Make torch.compile in this process read and write its cache under ``root/<machine_key()>``.

    Call before the first ``torch.compile`` of the process (inductor resolves the folder when it
    first needs it). A ``TORCHINDUCTOR_CACHE_DIR`` already set in the environment wins (the user
    chose a place); its value is returned unchanged. Returns the folder in use (created).
    """
    chosen = os.environ.get(CACHE_ENV)
    if chosen:
        return Path(chosen)
    folder = (Path(root) / machine_key()).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[CACHE_ENV] = str(folder)
    return folder


def cache_folder(root: Path | str = DEFAULT_CACHE_ROOT) -> Path:
    """The compile cache of this process (not created): ``TORCHINDUCTOR_CACHE_DIR`` where set
    (``use_compile_cache`` sets it; a user may), else ``root/<machine_key()>``, as
    ``use_compile_cache`` would choose."""
    chosen = os.environ.get(CACHE_ENV)
    return Path(chosen) if chosen else (Path(root) / machine_key()).resolve()


def extension_folder() -> Path:
    """Where this process builds and finds C++ extensions: ``cache_folder() / EXTENSIONS``."""
    return cache_folder() / EXTENSIONS


def remember_isa_probes() -> bool:
    """Let inductor's instruction-set probes run once per machine type, not once per process.

    Before its first compilation in a process (a cache hit included), inductor checks every vector
    instruction set the CPU reports (AVX-512, AVX2, ...): it builds a tiny library into the
    compile cache (only if not there yet) and loads it in a child Python, which loads libtorch.
    On the 2-core reference machine the three children cost ~1.1 s of every training job
    (BENCHMARKS.md). The library's file name is derived from its code, flags and compiler, and it
    lies in this machine type's cache folder; a load that succeeded once for that file and this
    torch installation succeeds again. So each success is recorded as an empty marker file next
    to the library (``<library>.probed-<digest of machine_key() and the torch library folder>``)
    and a later probe of the same file returns True without a child. Failures are never recorded
    (probed again each time), so inductor picks the same instruction set, and loads the same
    kernels, as without this. Call after importing torch, before the first compilation; returns
    False, changing nothing, if this torch has no such probe (``VecISA._probe_load``).
    """
    try:
        import torch
        from torch._inductor.cpu_vec_isa import VecISA
    except ImportError:
        return False
    probe = getattr(VecISA, "_probe_load", None)
    if probe is None:
        return False
    if getattr(probe, "remembered", False):
        return True
    torch_lib = os.path.join(os.path.dirname(torch.__file__), "lib")
    tag = hashlib.sha256(f"{machine_key()}\n{torch_lib}\n{sys.executable}".encode()).hexdigest()[
        :12
    ]

    def probe_once(self: object, output_path: str) -> bool:
        marker = Path(f"{output_path}.probed-{tag}")
        if marker.exists():
            return True
        loaded = bool(probe(self, output_path))
        if loaded:
            try:
                marker.touch()
            except OSError:  # a read-only cache: probe again next time
                pass
        return loaded

    probe_once.remembered = True  # type: ignore[attr-defined]
    VecISA._probe_load = probe_once  # type: ignore[method-assign]
    return True
