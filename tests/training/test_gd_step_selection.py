"""minnorm.training.gd_step.select_step: which implementation computes the GD steps, the fallback
when the C++ kernel cannot be built (one warning that says why), and the name of the path in the
training log and the run file."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from helpers import reference
from helpers.training import build, run_config, sphere_data
from minnorm.core.model import TwoLayerReLU
from minnorm.training import gd_step, streamed_kernel
from minnorm.training.compile_cache import CACHE_ENV
from minnorm.training.gd_step import (
    DEFAULT_KERNEL_ISAS,
    STREAMED_BLOCK_ABOVE_M,
    STREAMED_MAX_P,
    CompiledStep,
    EagerStep,
    KernelStep,
    UncompiledStep,
    select_step,
)
from minnorm.training.train import train_run

# What a training job's fused float64 step is on this CPU (one thread, p <= STREAMED_MAX_P).
ISA = streamed_kernel.cpu_isa()
TRAINED = f"cpp-{ISA}" if ISA in DEFAULT_KERNEL_ISAS else "compiled-streamed"
NEEDS_KERNEL = pytest.mark.skipif(
    ISA not in DEFAULT_KERNEL_ISAS,
    reason=f"this CPU's build ({ISA}) is not one a training step uses by default",
)


def problem(d: int = 4, m: int = 64, dtype: torch.dtype = torch.float64, S: int | None = None):
    gen = torch.Generator().manual_seed(2)
    batch = () if S is None else (S,)
    X = torch.nn.functional.normalize(torch.randn(10, d, generator=gen, dtype=torch.float64), dim=1)
    y = torch.randn(*batch, 10, generator=gen, dtype=torch.float64)
    W0 = torch.randn(*batch, m, d + 1, generator=gen, dtype=torch.float64)
    a = torch.randint(0, 2, (*batch, m), generator=gen, dtype=torch.float64) * 2 - 1
    return TwoLayerReLU(W0.to(dtype), a.to(dtype), True), X.to(dtype), y.to(dtype)


def test_one_implementation_per_situation():
    model, X, y = problem()  # p = 5, float64, CPU

    def chosen(model, X, y, impl="fused", **kwargs):
        return select_step(impl, model, X, y, "half_sum", **kwargs)

    assert isinstance(chosen(model, X, y, "eager"), EagerStep)
    assert chosen(model, X, y, "eager", threads=1).name == "eager"
    trained = chosen(model, X, y, threads=1)  # a training job: the kernel of this CPU's build
    assert trained.name == TRAINED and isinstance(trained, KernelStep) == TRAINED.startswith("cpp")
    for isa in DEFAULT_KERNEL_ISAS:
        if isa in streamed_kernel.runnable_isas():
            assert chosen(model, X, y, threads=1, isa=isa).name == f"cpp-{isa}"
    # The portable build is not vectorised: inductor's compiled formula, unless asked for.
    assert chosen(model, X, y, threads=1, isa="portable").name == "compiled-streamed"
    several = chosen(model, X, y, threads=2)  # inductor splits its sums over m between threads
    assert isinstance(several, CompiledStep) and several.name == "compiled-streamed"
    model32, X32, y32 = problem(dtype=torch.float32)
    assert chosen(model32, X32, y32, threads=1).name == "compiled-streamed"
    wide_p = problem(d=STREAMED_MAX_P)  # p = STREAMED_MAX_P + 1: matrix products
    assert chosen(*wide_p, threads=1).name == "compiled-matmul"
    assert chosen(*problem(d=STREAMED_MAX_P - 1), threads=1).name == TRAINED
    wide = problem(m=STREAMED_BLOCK_ABOVE_M + 1)
    assert chosen(*wide, threads=2).name == "compiled-streamed-blocked"
    if TRAINED.startswith("cpp-"):  # the kernel never reorders the sums: no blocking
        assert chosen(*wide, threads=1).name == TRAINED
    assert chosen(*problem(S=3), threads=1).name == TRAINED  # a seed batch
    with pytest.raises(ValueError, match="training.step_impl must be one of"):
        chosen(model, X, y, "fast")


@NEEDS_KERNEL
def test_a_kernel_that_cannot_be_built_falls_back_with_one_warning(monkeypatch, caplog):
    """Two batches in one job: one log warning that says why, the compiled streamed formula
    (torch.compile still has its compiler) for both, and the numbers of the reference."""

    def broken(isa):
        raise streamed_kernel.KernelUnavailable("building minnorm_streamed_x failed: boom")

    monkeypatch.setattr(streamed_kernel, "load_op", broken)
    monkeypatch.setattr(gd_step, "_warned", set())
    model, X, y = problem()
    with caplog.at_level(logging.WARNING, logger="minnorm.training.gd_step"):
        first = select_step("fused", model, X, y, "half_sum", threads=1)
        second = select_step("fused", model, X, y, "half_sum", threads=1)
    assert first.name == second.name == "compiled-streamed"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "the C++ streamed kernel cannot be used (building minnorm_streamed_x failed: boom); "
        "the GD steps are compiled-streamed instead"
    ]


_NO_COMPILER = r"""
import json, logging, sys
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append((record.levelname, record.name, record.getMessage()))
logging.getLogger().addHandler(Keep())
logging.getLogger().setLevel(logging.INFO)
import torch
torch.set_num_threads(1)
from minnorm.core.model import TwoLayerReLU
from minnorm.training.system import FullBatchData, GDSystem, make_trainer, quiet_lightning
gen = torch.Generator().manual_seed(4)
X = torch.nn.functional.normalize(torch.randn(12, 3, generator=gen, dtype=torch.float64), dim=1)
y = torch.randn(12, generator=gen, dtype=torch.float64)
W0 = torch.randn(50, 4, generator=gen, dtype=torch.float64)
a = torch.randint(0, 2, (50,), generator=gen, dtype=torch.float64) * 2 - 1
paths = []
for _ in range(2):  # two batches of one training job
    system = GDSystem(TwoLayerReLU(W0.clone(), a, True), lr=0.1, loss="half_sum",
                      step_impl="fused", boundaries=[0, 10, 20])
    with quiet_lightning():
        make_trainer("cpu").fit(system, datamodule=FullBatchData(X, y, 2))
    paths.append(system.step_description())
print(json.dumps({"paths": paths, "W": system.model.W.detach().tolist(), "X": X.tolist(),
                  "y": y.tolist(), "W0": W0.tolist(), "a": a.tolist(),
                  "warnings": [m for level, name, m in records if level == "WARNING"]}))
"""


@NEEDS_KERNEL
@pytest.mark.slow  # a fresh interpreter importing torch and Lightning
def test_without_a_compiler_training_falls_back_with_one_warning(tmp_path):
    """CXX pointing at a missing program and an empty compile cache: the kernel cannot be built,
    so the job trains with the uncompiled torch formula (torch.compile would need the compiler
    too), says so once for its two batches, and gets the reference's iterates."""
    env = {**os.environ, "CXX": str(tmp_path / "no-such-compiler"), CACHE_ENV: str(tmp_path / "cc")}
    out = subprocess.run(
        [sys.executable, "-c", _NO_COMPILER],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=tmp_path,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["paths"] == ["fused (uncompiled-matmul)"] * 2
    assert len(result["warnings"]) == 1, result["warnings"]
    assert result["warnings"][0] == (
        f"the C++ streamed kernel cannot be used (no C++ compiler: "
        f"'{tmp_path / 'no-such-compiler'}' is not on the PATH (set CXX to one)); "
        f"the GD steps are uncompiled-matmul instead"
    )
    iterates, _ = reference.gd_iterates(
        np.array(result["X"]),
        np.array(result["y"]),
        np.array(result["W0"]),
        np.array(result["a"]),
        0.1,
        "half_sum",
        20,
        True,
        1e6,
    )
    np.testing.assert_allclose(np.array(result["W"]), iterates[20], rtol=1e-12, atol=1e-12)
    assert not list((tmp_path / "cc").rglob("*.so"))  # nothing was built


def test_uncompiled_step_needs_no_compiler_and_matches_eager():
    model, X, y = problem(S=2)
    eager = EagerStep(model, X, y, "mean")
    g_e, v_e = eager(model.W)
    g_u, v_u = UncompiledStep(model, X, y, "mean")(model.W)
    torch.testing.assert_close(g_u, g_e, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(v_u, v_e, rtol=1e-12, atol=0)


@pytest.mark.parametrize("impl", ["fused", "eager"])
def test_the_run_file_and_the_log_name_the_path(impl, one_thread, caplog):
    data_cfg, data = sphere_data()
    cfg = run_config(data_cfg, width=40, steps=20, step_impl=impl)
    expected = TRAINED if impl == "fused" else "eager"
    with caplog.at_level(logging.INFO):
        ds = train_run(data, build(data_cfg, data, cfg), cfg)
    assert ds.attrs["gd_step"] == expected
    description = f"fused ({expected})" if impl == "fused" else "eager"
    assert f"GD steps computed by the {description} step" in caplog.text
