"""`minnorm archive`: one zip of a results folder with RO-Crate metadata, to deposit and cite.

The archive holds what a reader needs to check the paper's claims without rerunning anything:
the self-contained HTML report, each experiment's collected dataset (`results/<exp>/<exp>.nc`),
the checks tables and any other table written directly in `results/` or `results/<exp>/`, the
resolved config of the run, the lock file the release was tested with, and the versions of the
packages that ran it. Its manifest, `ro-crate-metadata.json`, is written by the `rocrate`
package (RO-Crate 1.3) and lists every file with its format and what it is, plus minnorm itself
as the software that made them.
"""

from __future__ import annotations

import platform
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from rocrate.model import SoftwareApplication
from rocrate.rocrate import ROCrate

from minnorm import __version__
from minnorm.io.files import atomic_write
from minnorm.workflow.invocation import LAST_RUN_CONFIG
from minnorm.workflow.packaged import LOCK_FILE, packaged_file

REPORT = Path("results") / "report.html"
# Tables: text files directly in results/ or results/<exp>/ (checks.csv/md/html, findings, ...).
TABLE_SUFFIXES = {".csv": "text/csv", ".md": "text/markdown", ".html": "text/html"}
# Written by people, not by a run (results/README.md says what the folder is for).
NOT_RESULTS = {"README.md"}
NETCDF = "application/x-netcdf"
LICENSE = "https://spdx.org/licenses/MIT"


class ArchiveError(FileNotFoundError):
    """The results folder lacks something the archive must hold (the report, the config)."""


@dataclass(frozen=True)
class Part:
    """One file of the archive: where it comes from, where it goes, what it is."""

    source: Path
    dest: str
    description: str
    encoding: str


def collected_files(root: Path) -> list[Path]:
    """Each experiment's collected dataset `results/<exp>/<exp>.nc` under `root`."""
    return sorted(p for p in (root / "results").glob("*/*.nc") if p.stem == p.parent.name)


def table_files(root: Path) -> list[Path]:
    """Tables directly in `root/results/` and `root/results/<exp>/` (not the report)."""
    results = root / "results"
    found = [*results.glob("*.*"), *results.glob("*/*.*")]
    return sorted(
        p
        for p in found
        if p.suffix in TABLE_SUFFIXES
        and p.is_file()
        and p.name not in NOT_RESULTS
        and p.name != REPORT.name
    )


def installed_versions() -> str:
    """`name==version` of every installed distribution (sorted), after the Python version."""
    names = {
        (dist.metadata["Name"] or "").lower(): dist.version for dist in metadata.distributions()
    }
    lines = [f"# Python {platform.python_version()} ({platform.platform()})"]
    lines += [f"{name}=={version}" for name, version in sorted(names.items()) if name]
    return "\n".join(lines) + "\n"


def archive_parts(root: Path, scratch: Path, report: Path | None = None) -> list[Part]:
    """Every file of the archive of the results under `root`; generated ones are written to
    `scratch`. `report`: the HTML report (default `root/results/report.html`), archived as
    `results/report.html`. Raises ArchiveError when the report or the run's config is missing."""
    report, config = report or root / REPORT, root / LAST_RUN_CONFIG
    if not report.is_file():
        raise ArchiveError(f"no {report}: make the report first (minnorm report)")
    if not config.is_file():
        raise ArchiveError(f"no {config}: no run has been made in {root}")
    parts = [
        Part(
            report,
            REPORT.as_posix(),
            "self-contained Snakemake report: figures, checks, runtimes",
            "text/html",
        ),
        Part(
            config,
            LAST_RUN_CONFIG.as_posix(),
            "resolved config of the run (defaults filled in)",
            "application/yaml",
        ),
    ]
    for path in collected_files(root):
        dest = path.relative_to(root).as_posix()
        parts.append(
            Part(path, dest, f"all runs of experiment {path.stem} (CF-1.11 netCDF)", NETCDF)
        )
    for path in table_files(root):
        dest = path.relative_to(root).as_posix()
        parts.append(Part(path, dest, f"table {dest}", TABLE_SUFFIXES[path.suffix]))
    lock = packaged_file(LOCK_FILE)
    parts.append(
        Part(
            lock, LOCK_FILE, f"the environment minnorm {__version__} was tested with", "text/plain"
        )
    )
    versions = scratch / "environment.txt"
    versions.write_text(installed_versions(), encoding="utf-8")
    parts.append(
        Part(
            versions,
            "environment.txt",
            "Python and package versions of the archiving environment",
            "text/plain",
        )
    )
    return parts


def build_crate(root: Path, scratch: Path, report: Path | None = None) -> ROCrate:
    """The RO-Crate of the results under `root` (files not yet copied)."""
    crate = ROCrate()
    crate.name = f"minnorm {__version__} results"
    crate.description = (
        "Gradient descent on wide two-layer ReLU networks against the linearized min-norm "
        "solution (Satpathi & Srikant 2021; Arora et al. 2019): the collected runs, theorem "
        "checks and report of one workflow run."
    )
    crate.license = LICENSE
    software = crate.add(
        SoftwareApplication(
            crate,
            f"#minnorm-{__version__}",
            properties={"name": "minnorm", "softwareVersion": __version__},
        )
    )
    for part in archive_parts(root, scratch, report):
        crate.add_file(
            part.source,
            dest_path=part.dest,
            properties={
                "name": part.dest,
                "description": part.description,
                "encodingFormat": part.encoding,
                "contentSize": str(part.source.stat().st_size),
            },
        )
    crate.root_dataset["softwareVersion"] = __version__
    crate.root_dataset["isBasedOn"] = software
    return crate


def write_archive(root: Path, out: Path, report: Path | None = None) -> Path:
    """Write the archive of the results under `root` to the zip file `out` (atomically);
    `report` as in `archive_parts`."""
    with tempfile.TemporaryDirectory(prefix="minnorm-archive-") as scratch:
        crate = build_crate(Path(root), Path(scratch), report)
        atomic_write(out, crate.write_zip)
    return Path(out)
