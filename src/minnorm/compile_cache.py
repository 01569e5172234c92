"""A persistent, project-local cache of what torch.compile builds, shared by every job on one machine.

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
(``machine_key``): a cluster with several CPU models never loads a kernel built for another.
Nothing here changes a number: a cached kernel is the same code as a freshly compiled one.
"""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path

# The environment variable inductor reads for its cache folder (torch._inductor.runtime.cache_dir_utils).
CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
# Default location, relative to the working directory of the job (the project root under Snakemake).
DEFAULT_CACHE_ROOT = Path(".cache") / "torchinductor"


def machine_key() -> str:
    """12 hex digits naming this machine type: architecture, CPU model and instruction-set flags
    (from /proc/cpuinfo where it exists) and the torch version."""
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
