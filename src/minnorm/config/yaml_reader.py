"""Strict reading of config files: YAML syntax errors with file, line and column; duplicate keys
refused.

PyYAML (and so Snakemake) silently keeps the last of two equal keys in a mapping, so a second
`steps:` or a second experiment of the same name would override the first without a word. Here
every mapping, at any depth, is checked on the composed node tree (before values are built), so
the message can give the key path and both line numbers. YAML merge keys (`<<: *anchor`) are
allowed to be overridden: only keys written twice in the same mapping are refused.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from minnorm.config.schema import ConfigError, key_path

_MERGE_TAG = "tag:yaml.org,2002:merge"


def _mark_text(path: Path, mark: Any) -> str:
    """`file:line:column` (1-based) of a YAML mark."""
    return f"{path}:{mark.line + 1}:{mark.column + 1}"


def _syntax_message(path: Path, text: str, error: yaml.YAMLError) -> str:
    """One message for a YAML syntax error: where, what, and the offending line with a caret."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    context_mark = getattr(error, "context_mark", None)
    if mark is None:
        return f"{path}: YAML syntax error: {problem}"
    message = f"{_mark_text(path, mark)}: YAML syntax error: {problem}"
    if context and context_mark is not None:
        message += f" ({context} at line {context_mark.line + 1}, column {context_mark.column + 1})"
    lines = text.splitlines()
    if 0 <= mark.line < len(lines):
        line = lines[mark.line]
        shown = line.replace("\t", "\\t")  # a tab shown as the two characters \t
        caret = " " * (mark.column + line[: mark.column].count("\t")) + "^"
        message += f"\n    {shown}\n    {caret}"
    if "\\t" in problem or "\t" in problem:
        message += "\n    (YAML indentation must use spaces, not tabs)"
    return message


def _scalar_key(node: yaml.Node) -> Any:
    """A hashable identity of a mapping key node: (tag, text) for scalars, the node otherwise."""
    if isinstance(node, yaml.ScalarNode):
        return (node.tag, node.value)
    return id(node)


def _key_name(node: yaml.Node) -> Any:
    """How a key is shown in a key path."""
    return node.value if isinstance(node, yaml.ScalarNode) else f"<{node.tag}>"


def duplicate_keys(root: yaml.Node | None, path: Path) -> list[str]:
    """Every key written twice in one mapping of the node tree, as `key.path: ...` messages."""
    problems: list[str] = []
    seen_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, list[Any]]] = [(root, [])] if root is not None else []
    while stack:
        node, parts = stack.pop()
        if id(node) in seen_nodes:  # an alias of a node already checked
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG:
                    stack.append((value_node, parts))
                    continue
                identity = _scalar_key(key_node)
                line = key_node.start_mark.line + 1
                name = _key_name(key_node)
                if identity in first_line:
                    problems.append(
                        f"{key_path([*parts, name])}: duplicate key '{name}' at "
                        f"{path}:{line} (first given at line {first_line[identity]}); "
                        "YAML would silently keep only the last one, remove or rename one"
                    )
                else:
                    first_line[identity] = line
                stack.append((value_node, [*parts, name]))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, [*parts, index]) for index, item in enumerate(node.value))
    return sorted(problems)


def _json_duplicates(text: str, path: Path) -> list[str]:
    """Duplicate keys of a JSON file that YAML cannot read (JSON allows tabs as whitespace)."""
    problems: list[str] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict:
        names = [name for name, _ in pairs]
        problems.extend(
            f"{name}: duplicate key '{name}' in {path}; JSON readers keep only the last one"
            for index, name in enumerate(names)
            if name in names[:index]
        )
        return dict(pairs)

    json.loads(text, object_pairs_hook=hook)
    return problems


def check_config_file(path: str | Path) -> None:
    """Raise ConfigError if the config file at `path` has a syntax error or a duplicate key.

    Messages give the file, line and column of a syntax error, and the key path and lines of
    each duplicate key. A missing file is left to the caller (Snakemake reports it).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the config file: {error}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        try:  # valid JSON that is not valid YAML 1.1 (tabs, say): Snakemake reads it as JSON
            problems = _json_duplicates(text, path)
        except ValueError:
            raise ConfigError(_syntax_message(path, text, error)) from None
    else:
        problems = duplicate_keys(root, path)
    if problems:
        raise ConfigError(f"invalid config file {path}:\n" + "\n".join(problems))


def check_config_files(paths: Iterable[str | Path]) -> None:
    """`check_config_file` for each path; every problem of every file in one ConfigError."""
    messages = []
    for path in dict.fromkeys(str(p) for p in paths):
        try:
            check_config_file(path)
        except ConfigError as error:
            messages.append(str(error))
    if messages:
        raise ConfigError("\n".join(messages))


def load_config_file(path: str | Path) -> dict:
    """Read a YAML/JSON config file strictly (see `check_config_file`); the top level must be a
    mapping."""
    check_config_file(path)
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError:
        config = json.loads(text)
    if not isinstance(config, dict):
        raise ConfigError(
            f"{path}: the config must be a mapping with the key 'experiments' at top level"
        )
    return config


def _deep_update(config: dict, update: dict) -> None:
    """Merge `update` into `config` recursively (Snakemake's rule for several config files)."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            _deep_update(config[key], value)
        else:
            config[key] = value


DEFAULT_CONFIG_FILE = "config/config.yaml"


def snakemake_config_files(args: list[str]) -> list[str]:
    """The config files a Snakemake command line with these arguments reads, in merge order.

    The workflow's own config/config.yaml first (unless `--replace-workflow-config`), then each
    file after `--configfile`/`--configfiles` (several may follow one flag, or `--configfile=F`).
    """
    given: list[str] = []
    collecting = False
    for arg in args:
        flag, has_value, value = arg.partition("=")
        if flag in ("--configfile", "--configfiles"):
            collecting = not has_value
            given.extend([value] if has_value else [])
        elif arg.startswith("-"):
            collecting = False
        elif collecting:
            given.append(arg)
    if "--replace-workflow-config" in args and given:
        return given
    return [DEFAULT_CONFIG_FILE, *given]


def main(argv: list[str] | None = None) -> int:
    """`python -m minnorm.config.yaml_reader FILE...`: check config files without Snakemake.

    Snakemake reads files given with `--configfile` before any workflow code runs and reports a
    YAML syntax error only as "Config file is not valid JSON or YAML"; this command gives the
    file, line and column, then validates the merged config like the workflow does. Given
    Snakemake's own arguments instead (any argument starting with "-", e.g. `make run`'s
    SNAKEMAKE_ARGS) or nothing, it checks the config files that command would read.
    """
    from minnorm.config.validate import validate_config

    args = sys.argv[1:] if argv is None else argv
    if any(arg.startswith("-") for arg in args) or not args:
        paths = snakemake_config_files(args)
    else:
        paths = args
    try:
        merged: dict = {}
        for path in paths:  # later files override earlier ones key by key, as in Snakemake
            _deep_update(merged, load_config_file(path))
        validate_config(merged)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"config OK: {', '.join(paths)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
