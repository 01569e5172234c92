"""Whether Snakemake's directory lock is stale, so that `make run` may remove it.

A run killed with SIGKILL leaves `.snakemake/locks/` behind and the next `snakemake` refuses to
start. Removing the lock is only safe when no Snakemake (and no job of one) is still working in
the directory: two instances would then run the same jobs at once. A process counts as such
when its command line mentions snakemake (`snakemake -c1`, `python -m snakemake`, a job's
`.snakemake/scripts/...`) and its working directory is the directory or inside it (Snakemake
changes into its `--directory`), and so does `minnorm run` / `minnorm report` (Snakemake runs
inside that process). A snakemake process whose working directory cannot be read
(another user's) counts as possibly here. Without /proc nothing can be told, and the lock is
never removed automatically.

    python -m minnorm.workflow.lock_guard [--directory DIR] [SNAKEMAKE ARGUMENTS]

(the snakemake arguments of the run about to start may follow: their `--directory`/`-d` names
the directory to check)

exits 0 when the directory holds a lock and no snakemake runs there (the caller may then run
`snakemake --unlock`), and 1 otherwise, saying why when a lock is present.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

PROC = Path("/proc")
UNLOCK_COMMAND = ".venv/bin/snakemake --unlock"


def lock_files(directory: Path) -> list[Path]:
    """Snakemake's lock files in `directory` (empty when it is not locked)."""
    locks = directory / ".snakemake" / "locks"
    return sorted(locks.iterdir()) if locks.is_dir() else []


def _parent(pid: int, proc: Path) -> int | None:
    """The parent pid of `pid`, or None when it is gone."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may contain spaces and parentheses.
    return int(stat.rsplit(")", 1)[1].split()[1])


def _ancestors(pid: int, proc: Path) -> set[int]:
    """`pid` and every process above it (the make and shell that started this check)."""
    chain: set[int] = set()
    while pid and pid not in chain:
        chain.add(pid)
        pid = _parent(pid, proc) or 0
    return chain


# `minnorm` subcommands that run Snakemake in their own process (minnorm.cli).
MINNORM_SNAKEMAKE_COMMANDS = ("run", "report")


def _runs_minnorm(words: list[str]) -> bool:
    """Whether a command line is `minnorm run ...` (or `python -m minnorm report ...`)."""
    for index, word in enumerate(words[:-1]):
        if os.path.basename(word) == "minnorm" and words[index + 1] in MINNORM_SNAKEMAKE_COMMANDS:
            return True
    return False


def snakemake_processes(directory: Path, proc: Path = PROC) -> list[tuple[int, str]]:
    """(pid, command line) of each snakemake process that may work in `directory`.

    This process and its ancestors are left out: the shell line that runs this check may
    itself mention `snakemake --unlock`.
    """
    directory = directory.resolve()
    mine = _ancestors(os.getpid(), proc)
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        words = [arg.decode(errors="replace") for arg in argv if arg]
        command = " ".join(words)
        if "snakemake" not in command.lower() and not _runs_minnorm(words):
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
        except FileNotFoundError:
            continue  # gone meanwhile
        except OSError:
            found.append((int(entry.name), command))  # cannot tell where: may be here
            continue
        if cwd == directory or directory in cwd.parents:
            found.append((int(entry.name), command))
    return sorted(found)


def stale_lock(directory: Path, proc: Path = PROC) -> tuple[bool, str]:
    """(True, message) when `directory` is locked and no snakemake can be working in it."""
    locks = lock_files(directory)
    if not locks:
        return False, ""
    if not proc.is_dir():
        return False, (
            f"minnorm: {directory} is locked and this system has no {proc} to tell whether a "
            f"snakemake still runs there; if none does, run: {UNLOCK_COMMAND}"
        )
    live = snakemake_processes(directory, proc)
    if live:
        listed = "; ".join(f"pid {pid}: {command[:120]}" for pid, command in live)
        return False, (
            f"minnorm: not removing Snakemake's lock on {directory}: a snakemake process may "
            f"still work there ({listed}). Wait for it or stop it; if the lock remains after it "
            f"has gone, run: {UNLOCK_COMMAND}"
        )
    return True, (
        f"minnorm: removing a stale Snakemake lock ({len(locks)} lock files, no snakemake "
        f"process runs in {directory})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--directory", "-d", type=Path, default=Path.cwd())
    # Other snakemake arguments (`make run SNAKEMAKE_ARGS=...`) are passed through and ignored.
    args, _ = parser.parse_known_args(argv)
    stale, message = stale_lock(args.directory)
    if message:
        print(message, file=sys.stderr)
    return 0 if stale else 1


if __name__ == "__main__":
    sys.exit(main())
