"""The typed `data:` block of a run config: the settings every data set has, and a read-only
mapping of the data set's own keys (`DatasetSpec.schema`: `labels`, `inputs`, ...).

Built once from a mapping (`DataSettings.from_mapping`, the YAML/JSON boundary) and turned back
into exactly that mapping (`to_mapping`), so that files store the same `config` JSON as before.
The config layer composes it into `minnorm.config.run_config.RunConfig`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

# A value of a data set's own key: a JSON scalar, or a list of them (held as a tuple).
OptionValue = bool | int | float | str | None | tuple[Any, ...]


def _frozen(value: Any) -> Any:
    """Lists (JSON arrays) as tuples, recursively, so that settings are hashable."""
    return tuple(_frozen(v) for v in value) if isinstance(value, list | tuple) else value


def _thawed(value: Any) -> Any:
    """Tuples back to lists, as the JSON of a config has them."""
    return [_thawed(v) for v in value] if isinstance(value, tuple) else value


class FrozenMapping(Mapping[str, OptionValue]):
    """A read-only, hashable mapping of a data set's own settings (`{"labels": "center"}`).

    Generators read it with `get(key, default)`; the default of a key lives with its generator.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        self._items: dict[str, OptionValue] = {
            str(k): _frozen(v) for k, v in sorted((items or {}).items())
        }

    def __getitem__(self, key: str) -> OptionValue:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())

    def __repr__(self) -> str:
        return f"FrozenMapping({self._items!r})"

    def replace(self, key: str, value: Any) -> FrozenMapping:
        """A copy with `key` set to `value`."""
        return FrozenMapping({**self._items, key: value})

    def to_mapping(self) -> dict[str, Any]:
        """The options as JSON-compatible values (tuples as lists)."""
        return {key: _thawed(value) for key, value in self._items.items()}


def _count(mapping: Mapping[str, Any], key: str, low: int, required: bool) -> int | None:
    """`mapping[key]` checked to be an integer >= `low` (None when absent and not required)."""
    if key not in mapping or (mapping[key] is None and not required):
        if required:
            raise ValueError(f"data.{key} is required")
        return None
    value = mapping[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        kind = "a positive" if low >= 1 else "a non-negative"
        raise ValueError(f"data.{key} must be {kind} integer, got {value!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """The `data:` block of a run config.

    name: a key of `minnorm.data.registry.DATASETS`; n_train, n_test: training and test points;
    seed: seed of the data points (fixed per experiment); dim: input dimension of a data set that
    lets the config choose it (None: fixed by the data set); classes: the two classes of a
    classification data set (first -> +1), None otherwise; path: folder of the original files
    (None: none); options: the data set's own keys (`DatasetSpec.schema`), as written.
    """

    name: str
    n_train: int
    n_test: int
    seed: int
    dim: int | None = None
    classes: tuple[int, ...] | None = None
    path: str | None = None
    options: FrozenMapping = dataclasses.field(default_factory=FrozenMapping)

    # Keys of the block with a field of their own; every other key is one of `options`.
    COMMON_KEYS: ClassVar[tuple[str, ...]] = (
        "name",
        "n_train",
        "n_test",
        "seed",
        "dim",
        "classes",
        "path",
    )

    @classmethod
    def from_mapping(cls, block: Mapping[str, Any]) -> DataSettings:
        """The settings of a `data:` block; ValueError naming `data.<key>` for a missing or
        ill-typed common key. Values are kept as written (no conversion), so that `to_mapping`
        gives the block back."""
        if not isinstance(block, Mapping):
            raise ValueError(f"data must be a mapping, got {block!r}")
        name = block.get("name")
        if not isinstance(name, str):
            raise ValueError(f"data.name must be a data-set name, got {name!r}")
        classes = block.get("classes")
        if classes is not None and not (
            isinstance(classes, list | tuple)
            and all(isinstance(c, int) and not isinstance(c, bool) for c in classes)
        ):
            raise ValueError(f"data.classes must be a list of class labels, got {classes!r}")
        path = block.get("path")
        if path is not None and not isinstance(path, str):
            raise ValueError(f"data.path must be a folder name or null, got {path!r}")
        n_train = _count(block, "n_train", 1, required=True)
        n_test = _count(block, "n_test", 1, required=True)
        seed = _count(block, "seed", 0, required=True)
        assert n_train is not None and n_test is not None and seed is not None  # required above
        return cls(
            name=name,
            n_train=n_train,
            n_test=n_test,
            seed=seed,
            dim=_count(block, "dim", 1, required=False),
            classes=None if classes is None else tuple(classes),
            path=path,
            options=FrozenMapping({k: v for k, v in block.items() if k not in cls.COMMON_KEYS}),
        )

    def to_mapping(self) -> dict[str, Any]:
        """The `data:` block as the validated config has it: name, n_train, n_test, path, seed,
        then dim and classes when set, and the data set's own keys."""
        block: dict[str, Any] = {
            "name": self.name,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "path": self.path,
            "seed": self.seed,
        }
        if self.dim is not None:
            block["dim"] = self.dim
        if self.classes is not None:
            block["classes"] = list(self.classes)
        block.update(self.options.to_mapping())
        return block

    def with_setting(self, key: str, value: Any) -> DataSettings:
        """A copy with the setting `key` (as in `data.<key>`) set to `value`: a common key's
        field, or one of `options`."""
        if key in self.COMMON_KEYS:
            return DataSettings.from_mapping({**self.to_mapping(), key: value})
        return dataclasses.replace(self, options=self.options.replace(key, value))
