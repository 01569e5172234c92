"""A data set with its own config key (DatasetSpec.schema) needs no schema edit: the key is merged
into the loaded schema (minnorm.config.schema.load_schema) and refused for other data sets."""

from __future__ import annotations

import pytest

from minnorm.config import ConfigError, validate_config
from minnorm.config.schema import load_schema, read_schema_file
from minnorm.data.registry import DATASETS, DatasetSpec

RADIUS = {"description": "circle radius", "type": "number", "exclusiveMinimum": 0}


def _config(data: dict) -> dict:
    return {"experiments": {"e": {"data": data, "sweep": {"width": [8], "seed": [0]}}}}


@pytest.fixture
def circle(monkeypatch: pytest.MonkeyPatch) -> DatasetSpec:
    spec = DatasetSpec("circle", lambda cfg: None, "toy", dim=2, schema={"radius": RADIUS})
    monkeypatch.setitem(DATASETS, "circle", spec)
    return spec


def test_a_data_set_key_is_accepted_checked_and_kept_to_its_data_set(circle: DatasetSpec) -> None:
    assert "radius" not in read_schema_file()["$defs"]["data"]["properties"]  # no edit of the file
    assert load_schema()["$defs"]["data"]["properties"]["radius"] == RADIUS
    resolved = validate_config(_config({"name": "circle", "radius": 2.5}))
    assert resolved["experiments"]["e"]["data"]["radius"] == 2.5
    with pytest.raises(ConfigError, match=r"experiments\.e\.data\.radius: .*must be > 0"):
        validate_config(_config({"name": "circle", "radius": -1.0}))
    with pytest.raises(
        ConfigError, match=r"experiments\.e\.data\.radius: only for circle \(sphere_quadratic"
    ):
        validate_config(_config({"name": "sphere_quadratic", "dim": 3, "radius": 2.5}))
    assert "radius" not in validate_config(_config({"name": "circle"}))["experiments"]["e"]["data"]


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ({"n_train": {"type": "integer"}}, "data.n_train is a key of every data set"),
        ({"radius": dict(RADIUS, default=1.0)}, "has a default"),
        ({"radius": {"type": "integer"}}, "differs from another data set's data.radius"),
    ],
)
def test_registry_mistakes_in_a_schema_fragment_name_the_data_set(
    circle: DatasetSpec, monkeypatch: pytest.MonkeyPatch, fragment: dict, message: str
) -> None:
    monkeypatch.setitem(
        DATASETS, "square", DatasetSpec("square", lambda cfg: None, "toy", dim=2, schema=fragment)
    )
    with pytest.raises(ValueError, match=rf"DATASETS\['square'\]\.schema\['\w+'\]: {message}"):
        load_schema()
