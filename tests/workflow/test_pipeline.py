"""Tests of the rule entry points (minnorm.workflow.pipeline): right files out, nothing partial on
failure."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr
import yaml

from helpers import REPO
from helpers.runs import write_runs
from minnorm.analysis.check_tables import write_checks
from minnorm.analysis.checks import experiment_checks
from minnorm.config import validate_config
from minnorm.data.datasets import DataFileError, load_dataset
from minnorm.io import integrity
from minnorm.io.fingerprint import numerics_fingerprint
from minnorm.workflow import pipeline, plan
from minnorm.workflow.plan import data_config, run_config, target_config


def _with_training(run, **values):
    """`run` with the training settings `values` changed."""
    return dataclasses.replace(run, training=dataclasses.replace(run.training, **values))


@pytest.fixture(scope="module")
def tiny_config() -> dict:
    with open(REPO / "config" / "tests.yaml", encoding="utf-8") as handle:
        return validate_config(yaml.safe_load(handle))


def _leftovers(folder: Path) -> list[Path]:
    """Temporary files that an interrupted or failed write would leave behind."""
    return [p for p in folder.rglob("*") if ".tmp-" in p.name]


def _sphere_inputs(tiny_config: dict, folder: Path) -> tuple[Path, Path]:
    """Data and target files of tiny_sphere at width 64, seed 0, in `folder`."""
    data_file, target_file = folder / "data.nc", folder / "target.nc"
    pipeline.make_data_file(data_config(tiny_config, "tiny_sphere", 0, 0.0), data_file)
    pipeline.make_target_file(
        target_config(tiny_config, "tiny_sphere", 64, 0, 0.0), data_file, target_file
    )
    return data_file, target_file


def test_data_then_target_file(tiny_config: dict, tmp_path: Path) -> None:
    data_file = tmp_path / "data" / "s1_p0.nc"
    pipeline.make_data_file(data_config(tiny_config, "tiny_sphere", 1, 0.0), data_file)
    data = load_dataset(data_file)
    assert tuple(data.X_train.shape) == (20, 3) and tuple(data.X_test.shape) == (30, 3)

    settings = target_config(tiny_config, "tiny_sphere", 64, 1, 0.0)
    target_file = tmp_path / "target" / "m64_s1_p0.nc"
    pipeline.make_target_file(settings, data_file, target_file)
    with xr.open_dataset(target_file) as target:
        assert target["W_star"].shape == (64, 4)  # bias: p = d + 1
        assert json.loads(target.attrs["config"]) == settings.to_mapping()
        assert target.attrs["minnorm_version"]
    assert not _leftovers(tmp_path)


def test_data_job_writes_its_data_files_then_the_targets_of_every_width(
    tiny_config: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the data job of an experiment runs (workflow/scripts/make_data.py): one process.
    monkeypatch.chdir(tmp_path)
    data, targets = (
        plan.data_jobs(tiny_config, "tiny_sphere"),
        plan.target_jobs(tiny_config, "tiny_sphere"),
    )
    assert {job.config.width for job in targets} == {64, 128, 256}
    pipeline.make_data_files(data, targets)
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.nc"))
    assert written == sorted(plan.input_stage_files(tiny_config, "tiny_sphere"))
    assert not _leftovers(tmp_path)
    # Each target file is the one make_target_file writes alone from that data file.
    for job in targets:
        alone = tmp_path / "alone.nc"
        pipeline.make_target_file(job.config, job.data, alone)
        with xr.open_dataset(job.out) as target, xr.open_dataset(alone) as reference:
            xr.testing.assert_identical(target.load(), reference.load())
            assert json.loads(target.attrs["config"]) == job.config.to_mapping()
            assert target["W0"].shape[0] == job.config.width
        alone.unlink()


def test_data_job_refuses_a_target_of_another_data_file(tiny_config: dict, tmp_path: Path) -> None:
    data = [
        dataclasses.replace(job, out=str(tmp_path / Path(job.out).name))
        for job in plan.data_jobs(tiny_config, "tiny_sphere")
    ]
    target = dataclasses.replace(
        plan.target_jobs(tiny_config, "tiny_sphere", 64)[0], out=str(tmp_path / "t.nc")
    )
    with pytest.raises(ValueError, match="not a data file of this job"):
        pipeline.make_data_files(data, [target])
    assert not (tmp_path / "t.nc").exists()


def test_digits_data_file_has_pm1_labels_with_noise(tiny_config: dict, tmp_path: Path) -> None:
    out = tmp_path / "s0_p1.nc"
    pipeline.make_data_file(data_config(tiny_config, "tiny_digits", 0, 1.0), out)
    data = load_dataset(out)
    assert set(data.y_train.unique().tolist()) <= {-1.0, 1.0}
    assert data.meta["label_noise"] == 1.0


def test_target_from_missing_data_file_names_it_and_writes_nothing(
    tiny_config: dict, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.nc"
    out = tmp_path / "target.nc"
    with pytest.raises(DataFileError, match="nope.nc"):
        pipeline.make_target_file(
            target_config(tiny_config, "tiny_sphere", 64, 0, 0.0), missing, out
        )
    assert not out.exists()


def test_target_too_large_for_memory_is_refused_up_front(
    tiny_config: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from minnorm.training import resources

    data_file, out = tmp_path / "data.nc", tmp_path / "target.nc"
    pipeline.make_data_file(data_config(tiny_config, "tiny_sphere", 0, 0.0), data_file)
    needed = resources.estimate_run_bytes(20, 64, 4, "float64", 30)
    monkeypatch.setattr(resources, "available_bytes", lambda device: needed // 2)
    with pytest.raises(
        resources.RunTooLargeError, match=f"estimated peak {needed / 2**30:.2f} GiB"
    ):
        pipeline.make_target_file(
            target_config(tiny_config, "tiny_sphere", 64, 0, 0.0), data_file, out
        )
    assert not out.exists() and not _leftovers(tmp_path)


def test_finished_runs_are_reused_only_with_the_same_numeric_settings_and_code(
    tiny_config: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = run_config(tiny_config, "tiny_sphere", 64, 0, 0.0, 0.01)
    data_file, target_file = _sphere_inputs(tiny_config, tmp_path)
    out, done = tmp_path / "run.nc", tmp_path / "keep" / "run.done.nc"
    assert pipeline.make_run_file(settings, data_file, target_file, out, done=done) == "trained"
    content = out.read_bytes()
    assert done.read_bytes() == content
    with xr.open_dataset(out) as run:
        assert run.attrs["run_identity"] == plan.run_identity_digest(settings)
        assert run.attrs["code_sha256"] == numerics_fingerprint()
    out.unlink()  # as Snakemake does before rerunning a job
    assert pipeline.make_run_file(settings, data_file, target_file, out, done=done) == "reused"
    assert out.read_bytes() == content
    # Log and checkpoint intervals change no number: still reused, bit for bit.
    chatty = _with_training(settings, progress_every=1, checkpoint_every=3)
    out.unlink()
    assert pipeline.make_run_file(chatty, data_file, target_file, out, done=done) == "reused"
    assert out.read_bytes() == content
    # Other numeric settings, or other numerical code: trained again, and the kept copy replaced.
    longer = _with_training(settings, steps=settings.training.steps + 1)
    assert pipeline.make_run_file(longer, data_file, target_file, out, done=done) == "trained"
    monkeypatch.setattr(plan, "numerics_fingerprint", lambda: "0" * 64)
    assert pipeline.make_run_file(longer, data_file, target_file, out, done=done) == "trained"
    assert not _leftovers(tmp_path)


def test_damaged_completed_run_is_trained_again(tiny_config: dict, tmp_path: Path) -> None:
    settings = run_config(tiny_config, "tiny_sphere", 64, 0, 0.0, 0.01)
    data_file, target_file = _sphere_inputs(tiny_config, tmp_path)
    out, done = tmp_path / "run.nc", tmp_path / "keep" / "run.done.nc"
    pipeline.make_run_file(settings, data_file, target_file, out, done=done)
    # The run file and its completed-run link share an inode: truncating one truncates both.
    os.truncate(out, out.stat().st_size - 1)
    out.unlink()
    assert pipeline.make_run_file(settings, data_file, target_file, out, done=done) == "trained"
    assert integrity.netcdf_damage(out) is None and integrity.netcdf_damage(done) is None


def test_run_files_reuse_before_importing_torch(tiny_config: dict, tmp_path: Path) -> None:
    # A width whose runs are all reused prints one line and never imports torch or Lightning.
    keys = ("data", "target", "out", "checkpoint", "done")
    job = plan.train_jobs(tiny_config, "tiny_digits", 64)[0]
    first = dataclasses.replace(job, **{key: str(tmp_path / getattr(job, key)) for key in keys})
    data_file = Path(first.data)
    pipeline.make_data_file(data_config(tiny_config, "tiny_digits", 0, 0.0), data_file)
    pipeline.make_target_file(
        target_config(tiny_config, "tiny_digits", 64, 0, 0.0), data_file, first.target
    )
    assert pipeline.make_run_files([first], label="train_tiny_digits m=64") == (
        "train_tiny_digits m=64: reused 0, trained 1"
    )
    Path(first.out).unlink()
    code = (
        "import json, sys; from minnorm.workflow import pipeline; "
        "from minnorm.workflow.plan import TrainJob; "
        "from minnorm.config.run_config import RunConfig; "
        "job = json.load(sys.stdin); job['config'] = RunConfig.from_mapping(job['config']); "
        "line = pipeline.make_run_files([TrainJob(**job)], label='t'); "
        "assert not {'torch', 'pytorch_lightning', 'lightning'} & set(sys.modules), "
        "sorted(sys.modules)"
    )
    described = {key: getattr(first, key) for key in (*keys, "identity")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps({**described, "config": first.config.to_mapping()}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == "t: reused 1, trained 0\n"
    assert Path(first.out).read_bytes() == Path(first.done).read_bytes()


@pytest.mark.slow
def test_run_file_and_checkpoint_cleanup(tiny_config: dict, tmp_path: Path) -> None:
    settings = run_config(tiny_config, "tiny_sphere", 64, 0, 0.0, 0.01)
    data_file, target_file = _sphere_inputs(tiny_config, tmp_path)
    out, checkpoint = tmp_path / "run.nc", tmp_path / "ckpt" / "run.ckpt"
    pipeline.make_run_file(settings, data_file, target_file, out, checkpoint=checkpoint)
    with xr.open_dataset(out) as run:
        assert int(run["final_step"]) == settings.training.steps
        assert json.loads(run.attrs["config"]) == settings.to_mapping()
    assert not checkpoint.exists()
    assert not _leftovers(tmp_path)


@pytest.fixture(scope="module")
def collected_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A collected file of synthetic runs: 3 widths x 2 seeds x 2 noise levels."""
    root = tmp_path_factory.mktemp("synth")
    runs = write_runs(root, widths=(100, 1000, 10000), seeds=(0, 1), label_noises=(0.0, 0.5))
    out = root / "synth.nc"
    pipeline.make_collected_file(runs, out)
    return out


def test_collected_file_has_the_swept_dims(collected_file: Path) -> None:
    with xr.open_dataset(collected_file) as ds:
        assert dict(ds["dist_to_target"].sizes) == {
            "width": 3,
            "seed": 2,
            "label_noise": 2,
            "lr": 1,
            "step": 11,
        }
        assert ds.attrs["n_runs"] == 12


def test_checks_write_csv_and_markdown(collected_file: Path, tmp_path: Path) -> None:
    csv, md, html = (tmp_path / f"checks.{ext}" for ext in ("csv", "md", "html"))
    table, estimates = experiment_checks("synth", collected_file)
    write_checks(table, csv, md, html, estimates, tmp_path / "estimates.csv")
    header = csv.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header == [
        "experiment",
        "kind",
        "check",
        "setting",
        "claim",
        "measured",
        "ci_low",
        "ci_high",
        "criterion",
        "verdict",
        "detail",
    ]
    assert (tmp_path / "estimates.csv").read_text(encoding="utf-8").startswith("experiment,check")
    assert "synth" in md.read_text(encoding="utf-8")
    assert "synth" in html.read_text(encoding="utf-8")


def test_checks_leave_no_file_when_rendering_fails(
    collected_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import minnorm.analysis.check_tables

    def broken(_table: object) -> str:
        raise RuntimeError("markdown rendering failed")

    monkeypatch.setattr(minnorm.analysis.check_tables, "checks_markdown", broken)
    csv, md, html = (tmp_path / f"checks.{ext}" for ext in ("csv", "md", "html"))
    table, estimates = experiment_checks("synth", collected_file)
    with pytest.raises(RuntimeError, match="markdown rendering failed"):
        write_checks(table, csv, md, html, estimates, tmp_path / "estimates.csv")
    assert not csv.exists() and not md.exists() and not html.exists()
    assert not (tmp_path / "estimates.csv").exists()


@pytest.mark.slow
def test_figure_writes_png_and_pdf(collected_file: Path, tmp_path: Path) -> None:
    png, pdf = tmp_path / "figures" / "ss_fig1.png", tmp_path / "figures" / "ss_fig1.pdf"
    pipeline.make_figure("ss_fig1", collected_file, png, pdf)
    assert png.read_bytes().startswith(b"\x89PNG") and pdf.read_bytes().startswith(b"%PDF")
    assert not _leftovers(tmp_path)


def test_failing_figure_leaves_nothing_behind(
    collected_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matplotlib.figure import Figure

    import minnorm.figures
    from minnorm.figures.style import save_figure

    real_savefig = Figure.savefig

    def savefig(self: Figure, fname: Path, *, format: str, **kwargs: object) -> None:
        if format == "pdf":  # the PNG is written, then the PDF fails half-way
            Path(fname).write_bytes(b"%PDF partial")
            raise RuntimeError("plot failed")
        real_savefig(self, fname, format=format, **kwargs)

    def half_written(_ds: xr.Dataset, png: Path, pdf: Path) -> None:
        fig = Figure()
        fig.subplots().plot([0, 1])
        save_figure(fig, png, pdf)

    monkeypatch.setattr(Figure, "savefig", savefig)
    monkeypatch.setitem(minnorm.figures.FIGURES, "ss_fig1", half_written)
    png, pdf = tmp_path / "ss_fig1.png", tmp_path / "ss_fig1.pdf"
    with pytest.raises(RuntimeError, match="plot failed"):
        pipeline.make_figure("ss_fig1", collected_file, png, pdf)
    assert list(tmp_path.iterdir()) == []


def test_unknown_figure_is_refused(collected_file: Path, tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="unknown figure 'fig9'"):
        pipeline.make_figure("fig9", collected_file, tmp_path / "a.png", tmp_path / "a.pdf")
    assert list(tmp_path.iterdir()) == []


_RETAIN_SCRIPT = """
import resource, torch
from minnorm.training.resources import retain_freed_memory
torch.set_num_threads(1)
if {retain}:
    assert retain_freed_memory()
x = torch.ones(1000, 5000, dtype=torch.float64)  # 40 MB: an (n, m) buffer at n = 1000, m = 5000
for _ in range(10):  # warm up: the heap grows to its working size
    (x * 2.0).sum()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    (x * 2.0).sum()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_retained_memory_stops_per_step_page_faults() -> None:
    """Without it glibc maps each 40 MB buffer afresh (its dynamic mmap threshold stops at
    32 MB) and faults its pages in on every step."""
    import subprocess
    import sys

    faults = {}
    for retain in (False, True):
        result = subprocess.run(
            [sys.executable, "-c", _RETAIN_SCRIPT.format(retain=retain)],
            capture_output=True,
            text=True,
            check=True,
        )
        faults[retain] = int(result.stdout.split()[-1])
    pages_per_buffer = 40_000_000 // 4096
    assert faults[True] < pages_per_buffer, faults  # less than one buffer's pages in 20 steps
    assert faults[False] > 10 * pages_per_buffer, faults  # the default: most steps fault it in


def test_log_and_checkpoint_intervals_change_no_number(tiny_config: dict, tmp_path: Path) -> None:
    # The claim behind leaving them out of a run's identity, checked: two trainings that differ
    # only in progress_every and checkpoint_every store the same bytes in every variable.
    data_file, target_file = _sphere_inputs(tiny_config, tmp_path)
    files = []
    for progress, every in ((25, 20), (1, 7)):
        settings = _with_training(
            run_config(tiny_config, "tiny_sphere", 64, 0, 0.0, 0.01),
            progress_every=progress,
            checkpoint_every=every,
        )
        out = tmp_path / f"run_{progress}.nc"
        pipeline.make_run_file(
            settings, data_file, target_file, out, checkpoint=tmp_path / f"{progress}.ckpt"
        )
        files.append(out)
    with xr.open_dataset(files[0]) as a, xr.open_dataset(files[1]) as b:
        assert sorted(a.variables) == sorted(b.variables)
        for name in a.variables:
            if name != "wall_time_s":
                assert a[name].values.tobytes() == b[name].values.tobytes(), name
        assert a.attrs["run_identity"] == b.attrs["run_identity"]
        assert json.loads(a.attrs["config"])["training"]["progress_every"] == 25
