"""The run plan: which files and jobs a validated config asks for, and what identifies each run.

Plain functions over a config returned by `minnorm.config.validate.validate_config` (defaults filled
in);
no Snakemake, torch or Lightning import, so the plan is testable in milliseconds and
`workflow/rules/*.smk` only call these functions. File names follow ARCHITECTURE.md's contract.

Sweep lists are canonical: every function here sees them sorted, so reordering the values of a
sweep in the YAML changes no file name, job list or job parameter.

A run's *identity* is what can change its numbers: the resolved run config less the settings in
`NON_NUMERIC_TRAINING_KEYS`, plus `minnorm.io.fingerprint.numerics_fingerprint()`. A finished run is
reused exactly when its stored identity equals the planned one, and the jobs' Snakemake params
are short digests of these identities, so that a changed numerical setting or numerical code
reruns exactly the affected jobs while a log interval or a plotting change reruns nothing.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from typing import Any

from minnorm.config.sweep import (
    RUN_SWEEP_KEYS,
    key_sorted,
    numeric_settings,
    run_steps,
    setting_tag,
)
from minnorm.io.files import format_float
from minnorm.io.fingerprint import numerics_fingerprint

# --- file templates (ARCHITECTURE.md, "Files"); wildcards exp, width, seed, noise, lr, figure, ext.
# {tag} holds the run's swept settings (`sweep: {model.kappa: [...]}`), "" when there are none:
# "_model_kappa=0.1" and so on, sorted by key; data files name only the data settings, target
# files the data and model settings (see `setting_tag`).
DATA_FILE = "results/{exp}/data/s{seed}_p{noise}{tag}.nc"
TARGET_FILE = "results/{exp}/target/m{width}_s{seed}_p{noise}{tag}.nc"
RUN_FILE = "results/{exp}/runs/m{width}/s{seed}_p{noise}_lr{lr}{tag}.nc"
# Resumable state of a running training run; not an output, so a killed job keeps it.
CHECKPOINT_FILE = "results/{exp}/checkpoints/m{width}/s{seed}_p{noise}_lr{lr}{tag}.ckpt"
# A hard link to each finished run file: a rerun of a width's job restores the runs whose
# identity is unchanged instead of training them again.
DONE_FILE = "results/{exp}/checkpoints/m{width}/s{seed}_p{noise}_lr{lr}{tag}.done.nc"
COLLECTED_FILE = "results/{exp}/{exp}.nc"
FIGURE_FILE = "results/{exp}/figures/{figure}.{ext}"
FIGURE_FORMATS = ("png", "pdf")
# Passed as `width` to the file-list functions, it stays a wildcard (Snakemake output patterns).
WIDTH_WILDCARD = "{width}"

# The run-file attribute that holds the run's identity digest (see `run_identity_digest`).
IDENTITY_ATTR = "run_identity"
# Hex digits of the digests used as Snakemake params (64 bits: short in dry-run reasons, and a
# chance collision between two settings of one job is not a practical concern).
PARAM_DIGEST_HEX = 16


class PlanError(KeyError):
    """A name the plan does not know (experiment, width, sweep value); the message names the key."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


# --- sweeps and runs ------------------------------------------------------------------------------


def experiment(config: dict, exp: str) -> dict:
    """The experiment `exp` of a validated config, with a clear error if it is not there."""
    experiments = config["experiments"]
    if exp not in experiments:
        raise PlanError(f"experiments.{exp}: no such experiment; defined: {', '.join(experiments)}")
    return experiments[exp]


def sweep(config: dict, exp: str) -> dict[str, list]:
    """The sweep lists of `exp`, each sorted ascending: `{width, seed, label_noise, lr}` and then
    every swept setting (`model.kappa`, ...) by key.

    `sweep.lr` defaults to `[training.lr]` and `label_noise` to `[0.0]` (the validator fills
    both; the defaults here only matter for a hand-made config).
    """
    e = experiment(config, exp)
    raw = e["sweep"]
    lists = {
        "width": sorted(int(w) for w in raw["width"]),
        "seed": sorted(int(s) for s in raw["seed"]),
        "label_noise": sorted(float(p) for p in raw.get("label_noise", [0.0])),
        "lr": sorted(float(lr) for lr in raw.get("lr", [e["training"]["lr"]])),
    }
    for key in sorted(k for k in raw if k not in RUN_SWEEP_KEYS):
        lists[key] = sorted(raw[key])
    return lists


def setting_keys(config: dict, exp: str) -> list[str]:
    """The swept settings of `exp` (`["data.labels", "model.kappa"]`), sorted."""
    return [key for key in sweep(config, exp) if key not in RUN_SWEEP_KEYS]


def experiment_runs(config: dict, exp: str, width: int | str | None = None) -> list[dict]:
    """One dict `{width, seed, label_noise, lr, settings}` per run of `exp` (of one width if
    given); `settings` maps each swept setting's key to the run's value ({} when none is swept).

    The sweep's product in canonical order: width, then seed, label noise, lr and the swept
    settings by key, each ascending.
    `width` may be a wildcard spelling ("64") of a configured width; `WIDTH_WILDCARD` keeps it a
    wildcard (for file patterns only).
    """
    s = sweep(config, exp)
    if width is None:
        widths: list[Any] = s["width"]
    elif width == WIDTH_WILDCARD:
        widths = [WIDTH_WILDCARD]
    else:
        widths = [int(sweep_value(config, exp, "width", str(width)))]
    keys = setting_keys(config, exp)
    return [
        {
            "width": w,
            "seed": seed,
            "label_noise": noise,
            "lr": lr,
            "settings": dict(zip(keys, values, strict=True)),
        }
        for w, seed, noise, lr, *values in itertools.product(
            widths, s["seed"], s["label_noise"], s["lr"], *(s[key] for key in keys)
        )
    ]


def sweep_value(config: dict, exp: str, key: str, text: str) -> Any:
    """The configured value of `sweep.<key>` whose wildcard spelling is `text`.

    Wildcards hold `str(width)`, `str(seed)` and `format_float(value)` for label noise and lr;
    looking the value up (instead of parsing the text) guarantees the run uses exactly the number
    in the config, and a path that names no configured value fails clearly.
    """
    values = sweep(config, exp)[key]
    spell = format_float if key in ("label_noise", "lr") else str
    for value in values:
        if spell(value) == text:
            return value
    raise PlanError(
        f"experiments.{exp}.sweep.{key}: {text!r} is not one of the configured values {values}"
    )


def _sections(
    config: dict, exp: str, settings: dict[str, Any] | None, names: tuple[str, ...]
) -> dict[str, dict]:
    """Copies of the experiment's sections `names` with the run's swept settings applied."""
    e = experiment(config, exp)
    out = {name: copy.deepcopy(e[name]) for name in names}
    for key, value in (settings or {}).items():
        section, field = key.split(".", 1)
        if section in out:
            out[section][field] = value
    return out


def _swept(settings: dict[str, Any] | None, sections: tuple[str, ...]) -> dict[str, Any]:
    """`{"sweep": {key: value}}` for the run's swept settings in `sections`; {} when none."""
    chosen = {k: v for k, v in (settings or {}).items() if k.split(".")[0] in sections}
    return {"sweep": chosen} if chosen else {}


def run_settings(
    config: dict,
    exp: str,
    width: int,
    seed: int,
    label_noise: float,
    lr: float,
    settings: dict[str, Any] | None = None,
) -> dict:
    """The resolved run config: experiment name, data/model/training sections and the run's values.

    `training.lr` is set to `lr`, each swept setting (`settings`, `{"model.kappa": 0.1}`) is
    written at its key and listed under `sweep`, and with `training.horizon` the steps are
    round(horizon / lr). The result is a fresh, JSON-serialisable dict with sorted keys.
    """
    sections = _sections(config, exp, settings, ("data", "model", "training"))
    training = sections["training"]
    training["lr"] = float(lr)
    training["steps"] = run_steps(training, float(lr))
    return key_sorted(
        {
            "experiment": exp,
            **sections,
            "width": int(width),
            "seed": int(seed),
            "label_noise": float(label_noise),
            "lr": float(lr),
            **_swept(settings, ("data", "model", "training")),
        }
    )


def data_settings(
    config: dict, exp: str, seed: int, label_noise: float, settings: dict[str, Any] | None = None
) -> dict:
    """What determines a data file: `{experiment, data, seed, label_noise}` (and the swept data
    settings under `sweep`).

    Narrower than `run_settings` on purpose: adding a width or changing a training value must
    not rebuild (and thereby invalidate) the data files.
    """
    return key_sorted(
        {
            "experiment": exp,
            **_sections(config, exp, settings, ("data",)),
            "seed": int(seed),
            "label_noise": float(label_noise),
            **_swept(settings, ("data",)),
        }
    )


def target_settings(
    config: dict,
    exp: str,
    width: int,
    seed: int,
    label_noise: float,
    settings: dict[str, Any] | None = None,
) -> dict:
    """What determines a target file: `data_settings` plus `model` and `width` (no training)."""
    out = data_settings(config, exp, seed, label_noise, settings)
    out["model"] = _sections(config, exp, settings, ("model",))["model"]
    out["width"] = int(width)
    out.update(_swept(settings, ("data", "model")))
    return key_sorted(out)


# --- file names -----------------------------------------------------------------------------------


def _names(exp: str, run: dict) -> dict[str, Any]:
    return dict(
        exp=exp,
        width=run["width"],
        seed=run["seed"],
        noise=format_float(run["label_noise"]),
        lr=format_float(run["lr"]),
    )


def run_paths(exp: str, run: dict) -> dict[str, str]:
    """The files of one run `{width, seed, label_noise, lr[, settings]}`: data, target, out,
    checkpoint, done."""
    names = _names(exp, run)
    settings = run.get("settings", {})
    everything = setting_tag(settings)
    return {
        "data": DATA_FILE.format(**names, tag=setting_tag(settings, ("data",))),
        "target": TARGET_FILE.format(**names, tag=setting_tag(settings, ("data", "model"))),
        "out": RUN_FILE.format(**names, tag=everything),
        "checkpoint": CHECKPOINT_FILE.format(**names, tag=everything),
        "done": DONE_FILE.format(**names, tag=everything),
    }


def _unique(paths: list[str]) -> list[str]:
    return list(dict.fromkeys(paths))


def data_files(config: dict, exp: str) -> list[str]:
    """Every data file of `exp`: one per (seed, label noise)."""
    return _unique([run_paths(exp, r)["data"] for r in experiment_runs(config, exp)])


def target_files(config: dict, exp: str, width: int | str) -> list[str]:
    """The target files of one width of `exp`: one per (seed, label noise)."""
    return _unique([run_paths(exp, r)["target"] for r in experiment_runs(config, exp, width)])


def width_run_files(config: dict, exp: str, width: int | str) -> list[str]:
    """The run files of one width of `exp`."""
    return [run_paths(exp, r)["out"] for r in experiment_runs(config, exp, width)]


def run_files(config: dict, exp: str) -> list[str]:
    """Every run file of `exp`: the product of its sweep lists."""
    return [run_paths(exp, r)["out"] for r in experiment_runs(config, exp)]


def input_stage_files(config: dict, exp: str) -> list[str]:
    """The data files and the target files of every width of `exp` (inputs of the training): the
    outputs of the experiment's data job, in the order it writes them."""
    targets = [f for width in sweep(config, exp)["width"] for f in target_files(config, exp, width)]
    return [*data_files(config, exp), *targets]


def collected_file(exp: str) -> str:
    """The collected dataset of `exp`."""
    return COLLECTED_FILE.format(exp=exp)


def figure_files(config: dict, exp: str) -> list[str]:
    """PNG and PDF of every figure `exp` asks for."""
    return [
        FIGURE_FILE.format(exp=exp, figure=figure, ext=ext)
        for figure in experiment(config, exp)["figures"]
        for ext in FIGURE_FORMATS
    ]


def result_files(config: dict) -> list[str]:
    """The data, target, run and collected files of every experiment (existing or not)."""
    files: list[str] = []
    for exp in config["experiments"]:
        runs = experiment_runs(config, exp)
        for key in ("data", "target", "out", "done"):
            files.extend(_unique([run_paths(exp, run)[key] for run in runs]))
        files.append(collected_file(exp))
    return files


def local_data_files(data_cfg: dict) -> list[str]:
    """The user's original files a data set is read from, `DATASETS[name].files(data_cfg)`
    (minnorm.data.registry; [] without a `data.path`).

    Declared as inputs of the data job, so that replacing one reruns it. An absent file is
    listed under the name it would be read from, so that Snakemake names it as a missing input.
    """
    from minnorm.data.registry import DATASETS

    return [str(path) for path in DATASETS[data_cfg["name"]].files(data_cfg)]


# --- identity -------------------------------------------------------------------------------------


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, allow_nan=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def run_identity_digest(run_config: dict) -> str:
    """SHA-256 (64 hex digits) of a run's numeric settings and the numerical code's fingerprint.

    Stored as the run file's `run_identity` attr; equal digests mean equal numbers.
    """
    return _digest({"settings": numeric_settings(run_config), "numerics": numerics_fingerprint()})


def _job_param(settings: list[dict]) -> str:
    """Short Snakemake param of a job: digests of its settings and of the numerical code.

    Spelled out ("settings <hex>, numerics <hex>") so that a dry run's "Params have changed"
    reason says which of the two changed, in well under 300 characters.
    """
    return (
        f"settings {_digest(settings)[:PARAM_DIGEST_HEX]}, "
        f"numerics {numerics_fingerprint()[:PARAM_DIGEST_HEX]}"
    )


# --- jobs -----------------------------------------------------------------------------------------


def data_jobs(config: dict, exp: str) -> list[dict]:
    """The data files an experiment's data job writes first: one `{config, out}` per data file."""
    jobs: dict[str, dict] = {}
    for run in experiment_runs(config, exp):
        out = run_paths(exp, run)["data"]
        jobs[out] = dict(
            config=data_settings(config, exp, run["seed"], run["label_noise"], run["settings"]),
            out=out,
        )
    return list(jobs.values())


def target_jobs(config: dict, exp: str, width: int | str | None = None) -> list[dict]:
    """The target files an experiment's data job writes after its data files: one
    `{config, data, out}` per target file, of one width or (`width=None`) of every width, in
    canonical order (width, then seed, label noise and the swept settings, each ascending)."""
    jobs: dict[str, dict] = {}
    for run in experiment_runs(config, exp, width):
        files = run_paths(exp, run)
        jobs[files["target"]] = dict(
            config=target_settings(
                config, exp, run["width"], run["seed"], run["label_noise"], run["settings"]
            ),
            data=files["data"],
            out=files["target"],
        )
    return list(jobs.values())


def train_jobs(config: dict, exp: str, width: int | str) -> list[dict]:
    """The work of one width's training job, one dict per run:
    `{config, identity, data, target, out, checkpoint, done}` (`identity`: `run_identity_digest`).
    """
    jobs = []
    for run in experiment_runs(config, exp, width):
        settings = run_settings(
            config, exp, run["width"], run["seed"], run["label_noise"], run["lr"], run["settings"]
        )
        jobs.append(
            dict(config=settings, identity=run_identity_digest(settings), **run_paths(exp, run))
        )
    return jobs


def data_job_param(config: dict, exp: str) -> str:
    """Snakemake param of the data job of `exp` (see `_job_param`): the settings of its data files
    and of the target files of every width, so that a changed data or model setting, width list
    or numerical code reruns it (and a training setting does not)."""
    return _job_param(
        [job["config"] for job in (*data_jobs(config, exp), *target_jobs(config, exp))]
    )


def train_job_param(config: dict, exp: str, width: int | str) -> str:
    """Snakemake param of one width's training job: numeric settings of its runs and the code.

    Log and checkpoint intervals are left out, so changing them reruns no job.
    """
    return _job_param([numeric_settings(job["config"]) for job in train_jobs(config, exp, width)])
