"""How the workflow was invoked: config files merged into the default, the last run's config.

Snakemake merges a `--configfile` into the workflow's own `config/config.yaml` unless
`--replace-workflow-config` is given, so a user's file silently runs every default experiment
too; `merged_configfile_warning` says so at parse time. `write_last_run_config` remembers the
config of the last run in `results/`, so that `make report` builds the report of that run
whatever flags it had (as another workflow's module, where Snakemake skips `onstart`, a rule
writes it: `config_digest` is its param), and `existing_targets` lets the report cover only what
exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from minnorm.io.files import write_text_atomic

LAST_RUN_CONFIG = Path("results/last_run_config.yaml")
# Set by `make report`: the default target then lists only the files that exist.
REPORT_EXISTING_ENV = "MINNORM_REPORT_EXISTING"


def _experiment_names(path: Path) -> set[str]:
    """The experiment names a config file defines (none when it cannot be read as YAML)."""
    try:
        with open(path, encoding="utf-8") as handle:
            loaded = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError):
        return set()  # the config validation reports unreadable files
    experiments = loaded.get("experiments") if isinstance(loaded, dict) else None
    return set(experiments) if isinstance(experiments, dict) else set()


def merged_configfile_warning(
    configfiles: Iterable[str | os.PathLike[str]],
    replaced: bool,
    experiments: Iterable[str],
    default_file: str | os.PathLike[str] = "config/config.yaml",
) -> str | None:
    """A warning when `--configfile` files were merged into the default config, else None.

    `configfiles` are the files given with `--configfile`, `replaced` whether
    `--replace-workflow-config` was given, `experiments` the names in the merged config. The
    warning names the experiments that come from the default config only (they will run too).
    """
    files = [Path(f) for f in configfiles]
    if replaced or not files:
        return None
    default = Path(default_file).resolve()
    if all(f.resolve() == default for f in files):
        return None
    given: set[str] = set()
    for f in files:
        given |= _experiment_names(f)
    extra = [name for name in experiments if name not in given]
    if not extra:
        return None
    listed = ", ".join(str(f) for f in files)
    return (
        f"minnorm: --configfile {listed} was merged into {default_file} (no "
        f"--replace-workflow-config), so the default experiments {', '.join(extra)} run too. "
        f"To run only the experiments of {listed}, add --replace-workflow-config."
    )


def warn_if_configfile_merged(
    configfiles: Iterable[str | os.PathLike[str]], replaced: bool, experiments: Iterable[str]
) -> None:
    """Print `merged_configfile_warning` to stderr (at parse time, so a dry run shows it too)."""
    message = merged_configfile_warning(configfiles, replaced, experiments)
    if message:
        print(message, file=sys.stderr)


def write_last_run_config(
    config: Mapping[str, Any], path: str | os.PathLike[str] = LAST_RUN_CONFIG
) -> Path:
    """Write the (validated, resolved) config of the run now starting to `path` as YAML."""
    plain = json.loads(json.dumps(config, allow_nan=False))
    header = (
        "# The config of the last workflow run (written when it started). `make report` uses it:\n"
        "#   snakemake --report results/report.html --configfile "
        f"{Path(path).as_posix()} --replace-workflow-config\n"
    )
    write_text_atomic(header + yaml.safe_dump(plain, sort_keys=False), Path(path))
    return Path(path)


def config_digest(config: Mapping[str, Any]) -> str:
    """SHA-256 (16 hex digits) of a resolved config: the param of the rule that records it."""
    text = json.dumps(config, sort_keys=True, allow_nan=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def existing_targets(
    targets: Iterable[str],
    environ: Mapping[str, str] | None = None,
    where: Callable[[str], str] = str,
) -> list[str]:
    """`targets`, or only those that exist when `minnorm report` asked for it (see
    REPORT_EXISTING_ENV).

    A report of a partial run (killed, or run with `--until`) then covers the figures and
    tables that were made instead of failing on the first missing one. `where` maps a target to
    the path it has on disk (below a module's `prefix:`; the identity otherwise). ValueError
    when a report is asked for and none exists (an empty report would look like a result).
    """
    environ = os.environ if environ is None else environ
    targets = list(targets)
    if environ.get(REPORT_EXISTING_ENV) != "1":
        return targets
    existing = [t for t in targets if Path(where(t)).exists()]
    if targets and not existing:
        raise ValueError(
            f"no results to report: none of the {len(targets)} files this config makes exists "
            f"yet (e.g. {where(targets[-1])}); run the workflow first (make run / minnorm run)"
        )
    return existing


def results_folder_problem(path: str | os.PathLike[str], *, write: bool = True) -> str | None:
    """Why the results folder `path` cannot hold this run's files, in one line naming it, or None:
    a symbolic link to nothing, something that is not a folder, or (`write`: the run will write
    there) a folder this user may not write to."""
    folder = Path(path)
    if folder.is_symlink() and not folder.exists():
        return (
            f"{folder}: a symbolic link to {os.readlink(folder)}, which does not exist; create "
            "that folder (e.g. mount the disk) or remove the link"
        )
    if folder.exists() and not folder.is_dir():
        return f"{folder}: exists but is not a folder; move it away so that results can go there"
    if write and folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder}: folder is read-only for this user; make it writable or run elsewhere"
    return None


_FULL_KEY = re.compile(r"experiments\.([A-Za-z0-9_]+)((?:\.[A-Za-z_][A-Za-z0-9_]*)*)")
_SECTION_KEY = re.compile(r"(?<![\w.])((?:data|model|training|sweep)(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def _has_path(mapping: object, parts: list[str]) -> bool:
    """Whether `parts` is a key path of `mapping` (a swept key such as `model.kappa` under
    `sweep` is one key with a dot)."""
    for i, part in enumerate(parts):
        if not isinstance(mapping, dict):
            return False
        rest = ".".join(parts[i:])
        if part not in mapping:
            return rest in mapping
        mapping = mapping[part]
    return True


def merged_origin_note(
    message: str,
    configfiles: Iterable[str | os.PathLike[str]],
    default_file: str | os.PathLike[str] = "config/config.yaml",
) -> str:
    """`message` (a config error of a config Snakemake merged from the default file and
    `configfiles`) naming only the keys and the files the user wrote.

    A problem line whose key paths are all in the user's files is kept. One that also names keys
    only the default file holds (a horizon written by the user against the default's steps) is
    reworded to name the user's keys and file and the merge as the cause; one that names none of
    the user's keys (a problem of the default's own settings) is counted in a last line. Every
    reworded message ends with the way out: --replace-workflow-config.
    """

    def load(path: str | os.PathLike[str]) -> object:
        try:
            with open(path, encoding="utf-8") as handle:
                return yaml.safe_load(handle)
        except (OSError, yaml.YAMLError):
            return None

    files = [Path(f) for f in configfiles if Path(f).resolve() != Path(default_file).resolve()]
    if not files:
        return message
    users, default = [load(f) for f in files], load(default_file)
    names = ", ".join(_shown(f) for f in files)
    way_out = f"add --replace-workflow-config to use {'it' if len(files) == 1 else 'them'} alone"
    kept: list[str] = []
    reworded = default_only = 0
    for line in message.splitlines():
        found = _FULL_KEY.search(line)
        if found is None:
            kept.append(line)
            continue
        exp = found.group(1)
        paths = [m.group(0) for m in _FULL_KEY.finditer(line)]
        paths += [f"experiments.{exp}.{m.group(1)}" for m in _SECTION_KEY.finditer(line)]
        written = [p for p in paths if any(_has_path(u, p.split(".")) for u in users)]
        mine = list(dict.fromkeys(written))
        theirs = [p for p in paths if p not in mine and _has_path(default, p.split("."))]
        if not theirs:
            kept.append(line)
        elif mine:
            reworded += 1
            kept.append(
                f"{', '.join(mine)} (in {names}): does not fit the settings of experiments.{exp} "
                f"that Snakemake merged {names} into from the workflow's default config; "
                f"{way_out}"
            )
        else:
            default_only += 1
    if default_only:
        kept.append(
            f"and {default_only} problem{'s' if default_only > 1 else ''} in the settings of "
            f"the workflow's default config that Snakemake merged {names} into; {way_out}"
        )
    if not reworded and not default_only:
        return message
    return "\n".join(kept)


def _shown(path: Path) -> str:
    """`path` as the user would write it: relative to the working directory when below it."""
    relative = os.path.relpath(path)
    return path.as_posix() if relative.startswith("..") else relative
