"""The streamed gradient as a C++ kernel that keeps the activation pattern as bits, built from
``csrc/`` for this CPU's instruction set.

``gradient_formulas.streamed_gradient``, compiled by inductor, computes Z = Xt W^T twice per
step: once for f in the forward loop and again, for the pattern 1{Z > 0}, in the backward loop,
because inductor can only keep a pattern as an (n, m) buffer of bytes or doubles, which made the
step memory-bound (5-13x slower, BENCHMARKS.md). The kernel (``csrc/streamed_step.cpp``) stores the
pattern of 16 neurons at one point as 16 bits (n m / 8 bytes: 125 KB at n = 100, m = 10^4, in the
L2 cache) in its forward loop, and its backward loop adds r_i x~_i only to the neurons whose bit
is set, instead of recomputing p products per neuron and point.

It repeats the loops inductor generates for the formula with AVX-512 operation for operation, so
that every run's iterates are those of the compiled unblocked ``streamed_gradient`` on an AVX-512
CPU bit for bit (``tests/training/test_streamed_kernel.py``):

- f_i, for the points in pairs (2q, 2q+1) and the last one alone when n is odd: 16 lanes of
  accumulators, lane l summing c_r relu(z_ir) over the neurons r = l (mod 16) in order, with
  z_ir = ((x_i0 w_r0 + x_i1 w_r1) + x_i2 w_r2) + ... (no fused multiply-add), c_r = a_r m^-1/2, the
  last m mod 16 neurons added under a lane mask, then the lanes summed in ``at::vec``'s order;
- dL/dw_rk = c_r sum_i [z_ir > 0] (r_i x_ik), the sum over i in order, r_i = scale (f_i - y_i);
  inductor adds (0 x_ik) for the neurons whose pattern bit is 0, which leaves every sum unchanged;
- L = (scale / 2) sum_i (f_i - y_i)^2 over 16 lanes as above.

The 16 lanes are one type per instruction set (``ISAS``): two AVX-512 registers, four AVX2
registers, or an array in plain C++ (``csrc/lanes_*.h``); each performs the same IEEE operations
lane by lane, so the three builds give the same bits. ``cpu_isa`` picks the one this CPU runs
(torch's own pick, ``torch.backends.cpu.get_cpu_capability``). A build is a torch operator
library made with ``torch.utils.cpp_extension.load`` into the project's compile cache
(``compile_cache.extension_folder``), named by a digest of the sources and flags: built once per
machine type, and loaded by later processes without a compiler. The kernel of the other networks
(``minnorm.training.family_kernel``) is built and loaded the same way (``load_op`` with
``kernel="family"``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from minnorm.io.files import write_text_atomic
from minnorm.training.compile_cache import extension_folder
from minnorm.training.gradient_formulas import STREAMED_MAX_P

# Instruction sets the kernel is built for, widest first; "portable" is plain C++.
ISAS: tuple[str, ...] = ("avx512", "avx2", "portable")
# torch.backends.cpu.get_cpu_capability() -> the widest build that CPU runs.
_ISA_OF_CAPABILITY = {"AVX512": "avx512", "AVX2": "avx2"}
# Compiler flags per build: the instruction set (AVX-512 as inductor enables it for its kernels)
# and the macro that selects csrc/lanes_<isa>.h.
_ISA_FLAGS: dict[str, tuple[str, ...]] = {
    "avx512": (
        "-DMINNORM_ISA_AVX512",
        "-mavx512f",
        "-mavx512dq",
        "-mavx512vl",
        "-mavx512bw",
        "-mfma",
    ),
    "avx2": ("-DMINNORM_ISA_AVX2", "-mavx2", "-mfma"),
    "portable": (),
}
# IEEE arithmetic as written: no fast-math, and no contraction of a * b + c into a fused
# multiply-add (GCC contracts by default where the CPU has FMA, which changes the last bits). The
# floating-point flags inductor compiles the formula with in torch 2.13 amount to the same.
FLOAT_FLAGS: tuple[str, ...] = ("-O3", "-DNDEBUG", "-ffp-contract=off")
CSRC = Path(__file__).resolve().with_name("csrc")
# The kernels built from csrc/: each one library per instruction set, named minnorm_<kernel>_...,
# with its operator minnorm::<kernel>_step_<isa>. The relu kernel here, and the kernel of the
# other networks, ``minnorm.training.family_kernel`` (AVX-512 only).
KERNELS: tuple[str, ...] = ("streamed", "family")
# The sources each kernel compiles, and the name prefixes of the files its library name digests
# (its sources and the headers they include).
_KERNEL_SOURCES: dict[str, tuple[str, ...]] = {
    "streamed": ("streamed_step.cpp", "streamed_step_op.cpp"),
    "family": ("family_kernel.cpp", "family_kernel_op.cpp"),
}
_KERNEL_FILE_PREFIXES: dict[str, tuple[str, ...]] = {
    "streamed": ("streamed_step", "lanes_"),
    "family": ("family_kernel",),
}
# The kernel's lanes and chunks per block (csrc/streamed_step.h: kLanes, kBlockChunks).
LANES = 16
BLOCK_CHUNKS = 16
# Marker written next to a finished build, naming its library file: later processes load that.
_BUILT = "built"


class KernelUnavailable(RuntimeError):
    """The kernel cannot run in this process; the message says why. ``no_compiler``: there is no
    C++ compiler (so torch.compile, which needs one too on CPU, cannot work either)."""

    def __init__(self, reason: str, *, no_compiler: bool = False) -> None:
        super().__init__(reason)
        self.no_compiler = no_compiler


def cpu_isa() -> str:
    """The widest of ``ISAS`` this CPU runs, as torch's CPU dispatch sees it
    (``torch.backends.cpu.get_cpu_capability``)."""
    return _ISA_OF_CAPABILITY.get(torch.backends.cpu.get_cpu_capability(), "portable")


def runnable_isas() -> tuple[str, ...]:
    """The builds this CPU can run: ``cpu_isa()`` and the narrower ones."""
    return ISAS[ISAS.index(cpu_isa()) :]


def build_flags(isa: str) -> list[str]:
    """The extra compiler flags of the ``isa`` build."""
    return [*FLOAT_FLAGS, f"-DMINNORM_MAX_P={STREAMED_MAX_P}", *_ISA_FLAGS[isa]]


def library_name(isa: str, kernel: str = "streamed") -> str:
    """``minnorm_<kernel>_<isa>_<12 hex>``: the digest covers the kernel's files in csrc/, the flags
    and the torch version, so a changed source builds a new library instead of loading an old
    one."""
    digest = hashlib.sha256()
    for path in sorted(CSRC.iterdir()):
        if path.suffix in (".cpp", ".h") and path.name.startswith(_KERNEL_FILE_PREFIXES[kernel]):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update("\0".join([*build_flags(isa), torch.__version__]).encode())
    return f"minnorm_{kernel}_{isa}_{digest.hexdigest()[:12]}"


_loaded: dict[tuple[str, str], Callable[..., None]] = {}
_failed: dict[tuple[str, str], KernelUnavailable] = {}


def load_op(isa: str, kernel: str = "streamed") -> Callable[..., None]:
    """The operator ``torch.ops.minnorm.<kernel>_step_<isa>``, its library loaded from the compile
    cache or built there first (seconds, once per machine type). Raises ``KernelUnavailable`` if
    it cannot be built, again without retrying on later calls in the process."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    key = (kernel, isa)
    if key in _loaded:
        return _loaded[key]
    if key in _failed:
        raise _failed[key]
    if isa not in runnable_isas():
        raise KernelUnavailable(
            f"this CPU does not run the {isa} build (torch reports "
            f"{torch.backends.cpu.get_cpu_capability()})"
        )
    try:
        _load_library(isa, kernel)
    except KernelUnavailable as exc:
        _failed[key] = exc
        raise
    _loaded[key] = getattr(torch.ops.minnorm, f"{kernel}_step_{isa}").default
    return _loaded[key]


def _load_library(isa: str, kernel: str) -> None:
    name = library_name(isa, kernel)
    folder = extension_folder() / name
    marker = folder / _BUILT
    if not marker.exists():
        from torch.utils import cpp_extension  # imports setuptools: only to build

        compiler = cpp_extension.get_cxx_compiler()
        if shutil.which(compiler) is None:
            raise KernelUnavailable(
                f"no C++ compiler: {compiler!r} is not on the PATH (set CXX to one)",
                no_compiler=True,
            )
        folder.mkdir(parents=True, exist_ok=True)
        with _build_lock(folder):
            if not marker.exists():  # else another process built it meanwhile
                _build(isa, kernel, name, folder)
                return  # cpp_extension.load has loaded it
    torch.ops.load_library(str(folder / marker.read_text().strip()))


def _build(isa: str, kernel: str, name: str, folder: Path) -> None:
    """Compile and load the library with torch.utils.cpp_extension (ninja); then write the marker
    that names the library file."""
    from torch.utils import cpp_extension

    # cpp_extension's own lock file is left behind by a build that was killed, and would make
    # every later build wait forever; we hold _build_lock, so no other build is under way.
    (folder / "lock").unlink(missing_ok=True)
    try:
        with _ninja_on_path():
            cpp_extension.load(
                name=name,
                sources=[str(CSRC / source) for source in _KERNEL_SOURCES[kernel]],
                extra_cflags=build_flags(isa),
                build_directory=str(folder),
                is_python_module=False,
                verbose=False,
            )
    except KernelUnavailable:
        raise
    except Exception as exc:  # compiler or linker errors arrive as RuntimeError, OSError, ...
        lines = [line for line in str(exc).splitlines() if "error" in line.lower()]
        detail = lines[0] if lines else str(exc).strip().splitlines()[-1]
        raise KernelUnavailable(f"building {name} failed: {detail}") from exc
    write_text_atomic(f"{name}{cpp_extension.LIB_EXT}\n", folder / _BUILT)


@contextlib.contextmanager
def _build_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` between processes (released by the OS if the holder
    dies); no lock where ``fcntl`` does not exist."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(folder / "build.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _ninja_on_path() -> Iterator[None]:
    """cpp_extension runs ``ninja`` from the PATH; without one there, the ninja package's (in
    .venv/bin, which is not on the PATH of a job started as ``.venv/bin/python``)."""
    if shutil.which("ninja"):
        yield
        return
    try:
        import ninja
    except ImportError as exc:
        raise KernelUnavailable("ninja is not installed (pip install ninja)") from exc
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([ninja.BIN_DIR, old])
    try:
        yield
    finally:
        os.environ["PATH"] = old


class StreamedKernel:
    """``streamed_gradient`` (unblocked, float64, CPU) as the C++ kernel, for p weights per neuron.

    Called like the compiled formula, but with a float ``scale``: (Wt: (p, m) or (S, p, m)
    contiguous, Xt: (n, p) contiguous, y: (n,) or (S, n), a: (m,) or (S, m), scale) -> (dL/dW:
    (..., m, p) as a transposed view of a (..., p, m) tensor, L: (...)). ``isa``: one of
    ``runnable_isas()`` (default ``cpu_isa()``). Raises ``KernelUnavailable`` if the build cannot
    be loaded or made.
    """

    def __init__(self, p: int, isa: str | None = None) -> None:
        if not 1 <= p <= STREAMED_MAX_P:
            raise ValueError(
                f"the streamed kernel is built for 1 <= p <= {STREAMED_MAX_P}, got {p}"
            )
        self.isa = cpu_isa() if isa is None else isa
        if self.isa not in ISAS:
            raise ValueError(f"isa must be one of {ISAS}, got {self.isa!r}")
        self.p = p
        self._op = load_op(self.isa)
        self._scratch: dict[tuple[int, int], tuple[torch.Tensor, ...]] = {}

    def __call__(
        self, Wt: torch.Tensor, Xt: torch.Tensor, y: torch.Tensor, a: torch.Tensor, scale: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        p, m = Wt.shape[-2:]
        n = Xt.shape[0]
        batch = Wt.shape[:-2]
        for name, t in (("Wt", Wt), ("Xt", Xt), ("y", y), ("a", a)):
            if t.dtype != torch.float64 or t.device.type != "cpu" or not t.is_contiguous():
                raise ValueError(
                    f"the streamed kernel takes contiguous float64 CPU tensors; {name} is not"
                )
        if (
            p != self.p
            or Xt.shape != (n, p)
            or y.shape not in ((n,), (*batch, n))
            or a.shape != (*batch, m)
            or len(batch) > 1
        ):
            shapes = ", ".join(
                f"{name} {tuple(t.shape)}"
                for name, t in (("Wt", Wt), ("Xt", Xt), ("y", y), ("a", a))
            )
            raise ValueError(f"shapes do not match (p = {self.p}): {shapes}")
        if (n, m) not in self._scratch:  # buffers the kernel overwrites, made once per shape
            blocks = -(-m // (LANES * BLOCK_CHUNKS))
            self._scratch[(n, m)] = (
                torch.empty(n, dtype=torch.float64),
                torch.empty(n, LANES, dtype=torch.float64),
                torch.empty(n, p, dtype=torch.float64),
                torch.empty(blocks, n, BLOCK_CHUNKS, dtype=torch.int16),
            )
        G = torch.empty_like(Wt)
        loss = torch.empty(batch, dtype=torch.float64)
        self._op(Wt, Xt, y, a, scale, m**-0.5, G, loss, *self._scratch[(n, m)])
        return G.mT, loss
