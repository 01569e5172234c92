"""The `minnorm` command: run the packaged Snakemake workflow in the current folder.

`minnorm init` writes a starting config and the profiles, `minnorm run` runs the workflow that
came with this package (Snakemake's own command-line parser and `snakemake.cli.args_to_api`,
which drives `snakemake.api.SnakemakeApi`, in this process), `minnorm report` makes the
self-contained HTML report of the last run, `minnorm status` says how far a run has got and
`minnorm archive` packs the results into an RO-Crate zip. The Makefile's targets call these.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from minnorm import __version__
from minnorm.workflow.invocation import LAST_RUN_CONFIG, REPORT_EXISTING_ENV
from minnorm.workflow.packaged import DEFAULT_CONFIG, snakefile, workflow_root

# What `minnorm init` copies from the packaged workflow into a folder: the configs (the default
# config/config.yaml and the papers' and studies' others), their README and the profiles.
INIT_FILES = ("config/*.yaml", "config/README.md", "profiles/*/*.yaml")
DEFAULT_REPORT = Path("results") / "report.html"
# Arguments that come with a value (`--configfile F`) are passed on as Snakemake reads them.
PASS_THROUGH = dict(ignore_unknown_options=True, allow_extra_args=True)


def run_snakemake(args: Sequence[str]) -> int:
    """Run Snakemake in this process with command-line `args` (profiles included); 0 or 1."""
    from snakemake.cli import args_to_api, parse_args
    from snakemake.exceptions import print_exception

    try:
        parser, parsed = parse_args(list(args))
        return 0 if args_to_api(parsed, parser) else 1
    except Exception as error:  # Snakemake's own main() reports every error this way
        print_exception(error)
        return 1


def _configfiles(args: Sequence[str], given: Sequence[str]) -> list[str]:
    """The config files a run reads: config/config.yaml (if there, and not replaced) and then
    the given ones (`--configfile` of minnorm, `--configfile(s)` among Snakemake's options)."""
    from minnorm.config.yaml_reader import snakemake_config_files

    files = snakemake_config_files([*args, *(f"--configfile={f}" for f in given)])
    if not DEFAULT_CONFIG.is_file():
        files = [f for f in files if Path(f) != DEFAULT_CONFIG]
    return files


def _check_configs(files: Sequence[str]) -> None:
    """Stop with file:line:column of a YAML mistake, or the key path of a config mistake, before
    Snakemake starts (which reports a YAML mistake in a --configfile without its place)."""
    from minnorm.config.yaml_reader import main as check_config_files

    if check_config_files(list(files)) != 0:
        sys.exit(1)


class RegistryHelp(click.Group):
    """`minnorm --help` ends with the experiments, figures, data sets and checks available,
    read from the registries when the help is shown (not at every start)."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from minnorm.workflow.reference import help_sections

        for title, rows in help_sections():
            with formatter.section(title):
                formatter.write_dl(rows)
        formatter.write_paragraph()
        formatter.write_text(f"minnorm {__version__}, workflow in {workflow_root()}")


@click.group(cls=RegistryHelp)
@click.version_option(__version__, prog_name="minnorm")
def cli() -> None:
    """Does gradient descent on a wide two-layer ReLU network end where its linearization says?
    Reproduce Satpathi & Srikant (2021) and Arora et al. (2019) in the current folder."""


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
def init(directory: Path, force: bool) -> None:
    """Write the commented default config (config/config.yaml), the other packaged configs and
    the profiles (profiles/default, profiles/slurm) into DIRECTORY."""
    root = workflow_root()
    files = [p.relative_to(root) for pattern in INIT_FILES for p in sorted(root.glob(pattern))]
    existing = [f for f in files if (directory / f).exists()]
    if existing and not force:
        listed = ", ".join(str(directory / f) for f in existing)
        raise click.ClickException(f"{listed} exist; keep them, or give --force to overwrite")
    for relative in files:
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / relative, target)
        click.echo(f"wrote {target}")
    click.echo("next: edit config/config.yaml, then `minnorm run` (`minnorm --help` lists more)")


@cli.command(context_settings=PASS_THROUGH)
@click.option(
    "--configfile",
    "configfiles",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="A config file (merged into config/config.yaml if that exists; repeatable).",
)
@click.argument("snakemake_args", nargs=-1, type=click.UNPROCESSED)
def run(configfiles: tuple[str, ...], snakemake_args: tuple[str, ...]) -> None:
    """Run the packaged workflow here; other options go to Snakemake (e.g. -n, --cores 4,
    --profile profiles/slurm --workflow-profile none)."""
    from minnorm.workflow.lock_guard import stale_lock

    files = _configfiles(snakemake_args, configfiles)
    if not [f for f in files if Path(f) != DEFAULT_CONFIG] and not DEFAULT_CONFIG.is_file():
        raise click.ClickException(
            f"no {DEFAULT_CONFIG} in {Path.cwd()} and no --configfile: `minnorm init` writes a "
            "starting config"
        )
    _check_configs(files)
    args = ["--snakefile", str(snakefile()), *snakemake_args]
    for path in configfiles:
        args += ["--configfile", path]
    stale, message = stale_lock(Path.cwd())
    if message:
        click.echo(message, err=True)
    if stale and run_snakemake([*args, "--unlock"]) != 0:
        raise click.ClickException("could not remove the stale Snakemake lock")
    sys.exit(run_snakemake(args))


@cli.command(context_settings=PASS_THROUGH)
@click.option(
    "--snakefile",
    "snakefile_path",
    type=click.Path(dir_okay=False, exists=True),
    help="Your own Snakefile that uses minnorm as a module (default: the packaged workflow "
    f"with the config of the last run, {LAST_RUN_CONFIG}).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=str(DEFAULT_REPORT),
    show_default=True,
    help="The report file.",
)
@click.argument("snakemake_args", nargs=-1, type=click.UNPROCESSED)
def report(snakefile_path: str | None, output: str, snakemake_args: tuple[str, ...]) -> None:
    """Self-contained HTML report of the figures and tables that exist (a partial run too)."""
    args = ["--report", output]
    if snakefile_path is None:
        args += ["--snakefile", str(snakefile())]
        if LAST_RUN_CONFIG.is_file():
            args += ["--configfile", str(LAST_RUN_CONFIG), "--replace-workflow-config"]
    else:
        args += ["--snakefile", snakefile_path]
    args += snakemake_args
    click.echo("snakemake " + " ".join(args), err=True)
    # The workflow reads it while Snakemake parses it, in this process.
    previous = os.environ.get(REPORT_EXISTING_ENV)
    os.environ[REPORT_EXISTING_ENV] = "1"
    try:
        code = run_snakemake(args)
    finally:
        if previous is None:
            del os.environ[REPORT_EXISTING_ENV]
        else:
            os.environ[REPORT_EXISTING_ENV] = previous
    sys.exit(code)


@cli.command()
@click.option(
    "--directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    help="The run's folder (the prefix, for a module with `prefix:`).",
)
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path))
def status(directory: Path, config_path: Path | None) -> None:
    """How far the run has got: run files per experiment, checkpoints, the latest log line."""
    from minnorm.workflow.status import print_status

    sys.exit(print_status(directory, config_path))


@cli.command()
@click.option(
    "--directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    help="The folder holding results/ (the prefix, for a module with `prefix:`).",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The report to include (default: DIRECTORY/results/report.html).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(f"minnorm-{__version__}-results.zip"),
    show_default=True,
)
def archive(directory: Path, report_path: Path | None, output: Path) -> None:
    """One zip of the results with RO-Crate metadata: report, collected datasets, checks and
    other tables, resolved config, lock file and package versions."""
    from minnorm.workflow.archive import ArchiveError, write_archive

    try:
        written = write_archive(directory, output, report=report_path)
    except ArchiveError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"wrote {written}")


def main() -> None:
    """The console script `minnorm`."""
    cli(prog_name="minnorm")
