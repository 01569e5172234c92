"""MkDocs hook: the reference pages are filled in from minnorm's schema and registries at build
time (minnorm.workflow.reference), so they list every setting, figure, check and data set there
is without an edit of docs/. A page asks for a table with a marker comment on a line of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from minnorm.workflow import reference


def _command_line() -> str:
    """`minnorm --help` and the help of each command, as code blocks."""
    from minnorm.cli import cli

    blocks = []
    with click.Context(cli, info_name="minnorm") as ctx:
        blocks.append(("minnorm --help", cli.get_help(ctx)))
        for name, command in cli.commands.items():
            with click.Context(command, parent=ctx, info_name=name) as sub:
                blocks.append((f"minnorm {name} --help", command.get_help(sub)))
    return "\n".join(f"## `{title}`\n\n```text\n{text}\n```\n" for title, text in blocks)


MARKERS: dict[str, Callable[[], str]] = {
    "<!-- minnorm:configuration -->": reference.configuration_markdown,
    "<!-- minnorm:figures -->": reference.figures_markdown,
    "<!-- minnorm:checks -->": reference.checks_markdown,
    "<!-- minnorm:datasets -->": reference.datasets_markdown,
    "<!-- minnorm:command-line -->": _command_line,
}


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace each marker line by its generated Markdown."""
    for marker, make in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown
