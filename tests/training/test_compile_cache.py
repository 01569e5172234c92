"""minnorm.training.compile_cache: torch.compile's on-disk cache in the project, one folder per
machine type."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minnorm.training import streamed_kernel
from minnorm.training.compile_cache import (
    CACHE_ENV,
    CAPABILITY_ENV,
    EXTENSIONS,
    cache_folder,
    extension_folder,
    machine_key,
    use_compile_cache,
)


def test_cache_folder_is_project_local_per_machine_and_created(tmp_path, monkeypatch):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    key = machine_key()
    assert len(key) == 12 and int(key, 16) >= 0 and key == machine_key()
    folder = use_compile_cache(tmp_path / "cc")
    assert folder == (tmp_path / "cc" / key).resolve() and folder.is_dir()
    assert os.environ[CACHE_ENV] == str(folder)


def test_extensions_are_built_in_the_cache_of_the_process(tmp_path, monkeypatch):
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    default = (tmp_path / ".cache" / "torchinductor" / machine_key()).resolve()
    assert cache_folder() == default and not default.exists()  # where it would be; not made
    assert extension_folder() == default / EXTENSIONS
    folder = use_compile_cache(tmp_path / "cc")
    assert cache_folder() == folder and extension_folder() == folder / EXTENSIONS


def test_a_folder_the_user_chose_wins(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert use_compile_cache(tmp_path / "cc") == tmp_path / "mine"
    assert os.environ[CACHE_ENV] == str(tmp_path / "mine")
    assert not (tmp_path / "cc").exists()


def _run_child(cwd: Path, args: list[str], more_env: dict[str, str]) -> dict:
    """Run `python -c args[0] args[1:]` in a fresh interpreter without the compile-cache and
    capability variables of this process (plus `more_env`); its last output line as JSON."""
    env = {k: v for k, v in os.environ.items() if k not in (CACHE_ENV, CAPABILITY_ENV)}
    out = subprocess.run(
        [sys.executable, "-c", *args],
        capture_output=True,
        text=True,
        check=True,
        env={**env, **more_env},
        cwd=cwd,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


_CHILD = r"""
import hashlib, json, subprocess, sys
from pathlib import Path
from minnorm.training.compile_cache import remember_isa_probes, use_compile_cache
use_compile_cache(sys.argv[1])
import torch
if sys.argv[2] == "remember":
    assert remember_isa_probes()
probes = []  # inductor's instruction-set probes: a child Python that loads a library
_run = subprocess.run
def counting_run(args, *rest, **kwargs):
    if args[0] == sys.executable and "LoadLibrary" in args[-1]:
        probes.append(args[-1])
    return _run(args, *rest, **kwargs)
subprocess.run = counting_run
from minnorm.core.model import TwoLayerReLU
from minnorm.training.gd_step import CompiledStep, KernelStep
torch.set_num_threads(1)
gen = torch.Generator().manual_seed(0)
X = torch.randn(30, 4, generator=gen, dtype=torch.float64)
y = torch.randn(30, generator=gen, dtype=torch.float64)
model = TwoLayerReLU(torch.randn(300, 5, generator=gen, dtype=torch.float64),
                     torch.randint(0, 2, (300,), generator=gen, dtype=torch.float64) * 2 - 1, True)
step = (KernelStep if sys.argv[3] == "kernel" else CompiledStep)(model, X, y, "half_sum")
step.lay_out(model.W)
grad, value = step(model.W)
result = {"name": step.name, "inductor": "torch._inductor" in sys.modules,
          "grad": hashlib.sha256(grad.contiguous().numpy().tobytes()).hexdigest(),
          "libs": sorted((str(f), f.stat().st_mtime_ns) for f in Path(sys.argv[1]).rglob("*.so"))}
if sys.argv[3] != "kernel":
    from torch._dynamo.utils import counters
    from torch._inductor.cpu_vec_isa import pick_vec_isa
    result.update(hits=counters["inductor"]["fxgraph_cache_hit"], probes=len(probes),
                  misses=counters["inductor"]["fxgraph_cache_miss"], isa=str(pick_vec_isa()))
print(json.dumps(result))
"""


@pytest.mark.slow  # five fresh interpreters: two compile the step, one builds the kernel
def test_second_process_loads_the_compiled_step_and_gets_the_same_gradient(tmp_path):
    def run(probes: str, step: str = "formula", **more_env: str) -> dict:
        return _run_child(tmp_path, [_CHILD, str(tmp_path / "cc"), probes, step], more_env)

    first, second, plain = run("remember"), run("remember"), run("plain")
    assert first["name"] == second["name"] == "compiled-streamed"
    assert (first["hits"], first["misses"]) == (0, 1)  # an empty folder: inductor compiles
    assert (second["hits"], second["misses"]) == (1, 0)  # the same step in a new process: loaded
    assert second["grad"] == first["grad"]  # the cached kernel computes the same bits
    assert any(Path(tmp_path / "cc").rglob("*.py"))  # the entries are in the project folder
    # Instruction-set probes: run (and remembered) by the first process only; the pick is the
    # one inductor makes when it probes every time.
    if first["isa"] != "INVALID_VEC_ISA":  # a CPU inductor cannot vectorise for probes nothing
        remembered = len(list(Path(tmp_path / "cc").rglob("*.probed-*")))  # the probes that loaded
        assert first["probes"] >= remembered >= 1 and plain["probes"] == first["probes"]
        assert second["probes"] == first["probes"] - remembered  # only failed probes run again
    assert first["isa"] == second["isa"] == plain["isa"]
    assert plain["grad"] == first["grad"] and (plain["hits"], plain["misses"]) == (1, 0)
    # The C++ kernel of this CPU's build: made in the same folder by the first process that needs
    # it (without inductor), loaded as it is by the next, even with no compiler there; on an
    # AVX-512 CPU, the same gradient bits as the compiled formula's.
    built = run("plain", "kernel")
    loaded = run("plain", "kernel", CXX=str(tmp_path / "no-such-compiler"))
    name = f"cpp-{streamed_kernel.cpu_isa()}"
    assert built["name"] == loaded["name"] == name
    assert not built["inductor"] and not loaded["inductor"]  # torch._inductor never imported
    kernel_libs = {f for f, _ in built["libs"]} - {f for f, _ in first["libs"]}
    assert len(kernel_libs) == 1 and "/cpp_extensions/minnorm_streamed_" in kernel_libs.pop()
    assert loaded["libs"] == built["libs"]  # nothing rebuilt or rewritten
    assert built["grad"] == loaded["grad"]
    if streamed_kernel.cpu_isa() == "avx512":
        assert built["grad"] == first["grad"]


def test_the_machine_key_holds_a_forced_cpu_capability(monkeypatch):
    monkeypatch.delenv(CAPABILITY_ENV, raising=False)
    plain = machine_key()
    monkeypatch.setenv(CAPABILITY_ENV, "")
    assert machine_key() == plain  # empty: torch's own pick, the same entries
    monkeypatch.setenv(CAPABILITY_ENV, "avx2")
    avx2 = machine_key()
    monkeypatch.setenv(CAPABILITY_ENV, "AVX2")
    assert machine_key() == avx2 != plain
    monkeypatch.setenv(CAPABILITY_ENV, "default")
    assert machine_key() not in (plain, avx2)


_MATMUL_CHILD = r"""
import json, sys
import torch
from minnorm.training.compile_cache import use_compile_cache
folder = use_compile_cache(sys.argv[1])
from minnorm.training.gradient_formulas import analytic_gradient
torch.set_num_threads(1)
gen = torch.Generator().manual_seed(0)
S, n, m, p = 3, 200, 1000, 64  # arora_fig2's shapes: the matmul formula (p > STREAMED_MAX_P)
X = torch.rand(n, p, generator=gen, dtype=torch.float64)
X = X / X.norm(dim=1, keepdim=True)
W = 0.01 * torch.randn(S, m, p, generator=gen, dtype=torch.float64)
a = torch.randint(0, 2, (S, m), generator=gen).double() * 2 - 1
y = torch.randint(0, 2, (S, n), generator=gen).double() * 2 - 1
scale = torch.tensor(1.0, dtype=torch.float64)
grad, loss = analytic_gradient(W, X, y, a, scale)
with torch.no_grad():
    cgrad, closs = torch.compile(analytic_gradient, fullgraph=True)(W, X, y, a, scale)
print(json.dumps({"folder": str(folder), "capability": torch.backends.cpu.get_cpu_capability(),
                  "grad": float((cgrad - grad).norm() / grad.norm()),
                  "loss": float(((closs - loss).abs() / loss).max())}))
"""


@pytest.mark.slow  # two fresh interpreters compile the matmul step
def test_a_process_with_a_forced_capability_does_not_load_another_capabilitys_kernels(tmp_path):
    """A process run with ATEN_CPU_CAPABILITY narrower than the CPU's own (avx2 on an AVX-512
    CPU, plain C++ on an AVX2 one) after one without it, both through the project cache: before
    the capability was part of the machine key the second loaded the first's kernel and got
    gradients with a relative error of about 16 (AVX-512 then avx2) or failed to compile
    (then default)."""
    import torch

    narrower = "avx2" if torch.backends.cpu.get_cpu_capability() == "AVX512" else "default"

    def run(**more_env: str) -> dict:
        return _run_child(tmp_path, [_MATMUL_CHILD, str(tmp_path / "cc")], more_env)

    own, forced = run(), run(**{CAPABILITY_ENV: narrower})
    assert forced["capability"] == narrower.upper() != own["capability"]
    for result in (own, forced):
        assert result["grad"] <= 1e-13 and result["loss"] <= 1e-13, result
    assert forced["folder"] != own["folder"]
