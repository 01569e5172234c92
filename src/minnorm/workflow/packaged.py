"""Where this minnorm's Snakemake workflow lives: inside the installed wheel, or in the clone.

A wheel carries the workflow (the repository's `Snakefile`, `workflow/`, `config/`, `profiles/`
and `requirements.lock`) as package data under `minnorm/snakemake_workflow/`, laid out as in the
repository (setup.py copies it at build time). An editable install from a clone has no copy: its
workflow is the clone's own top level. `workflow_root` returns whichever belongs to this package,
so `minnorm run` and a user's `module` statement use the rules of the installed release:

    from minnorm.workflow.packaged import module_snakefile

    module minnorm:
        snakefile: module_snakefile()
        config: config
        prefix: "minnorm"
"""

from __future__ import annotations

from pathlib import Path

# The package-data folder of the workflow in a wheel (setup.py, BUNDLE_DIR).
BUNDLE_DIR = "snakemake_workflow"
# The workflow's own Snakefile (the workflow catalog's layout) relative to the root; the root's
# `Snakefile` includes it, so that Snakemake finds `profiles/default` next to it.
MODULE_SNAKEFILE = Path("workflow") / "Snakefile"
# The default config a clone runs (a folder set up by `minnorm init` gets a copy).
DEFAULT_CONFIG = Path("config") / "config.yaml"
# The exact environment the release was tested with (`make venv`).
LOCK_FILE = "requirements.lock"

_PACKAGE = Path(__file__).resolve().parents[1]


class WorkflowNotFoundError(FileNotFoundError):
    """Neither a bundled workflow nor a clone's workflow belongs to this package."""


def workflow_root(package: Path = _PACKAGE) -> Path:
    """The folder holding this minnorm's `Snakefile`, `workflow/`, `config/` and `profiles/`.

    `package` is the folder of the `minnorm` package (this module's grandparent): the bundle
    inside it when the package was installed from a wheel, else the clone it sits in
    (`<clone>/src/minnorm`).
    """
    bundled = package / BUNDLE_DIR
    if (bundled / MODULE_SNAKEFILE).is_file():
        return bundled
    clone = package.parent.parent
    if package.parent.name == "src" and (clone / MODULE_SNAKEFILE).is_file():
        return clone
    raise WorkflowNotFoundError(
        f"minnorm at {package} has no Snakemake workflow: neither {bundled / MODULE_SNAKEFILE} "
        f"(a wheel) nor {clone / MODULE_SNAKEFILE} (a clone); reinstall minnorm from a wheel "
        "or a clone"
    )


def snakefile() -> Path:
    """The Snakefile `minnorm run` gives Snakemake (the root's, which includes the workflow's)."""
    return workflow_root() / "Snakefile"


def module_snakefile() -> str:
    """The Snakefile to name in a user's `module` statement (`workflow/Snakefile`)."""
    return str(workflow_root() / MODULE_SNAKEFILE)


def packaged_file(relative: str | Path) -> Path:
    """A file of the workflow's root (`config/config.yaml`, `profiles/slurm/config.v8+.yaml`,
    `requirements.lock`), with a clear error when it is missing."""
    path = workflow_root() / relative
    if not path.exists():
        raise WorkflowNotFoundError(f"minnorm's workflow has no {relative} ({path})")
    return path
