"""The library owns every value and its one JSON shape; a scope matching nothing is not found."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import gitstore
from gitstore import model
from gitstore.cli.main import cli


def test_every_public_value_type_lives_in_the_model_and_has_one_wire_shape() -> None:
    values = [
        getattr(model, name)
        for name in model.__all__
        if isinstance(getattr(model, name), type) and dataclasses.is_dataclass(getattr(model, name))
    ]
    assert len(values) >= 15
    for cls in values:
        # The package exports the very class the model defines: there is no second copy.
        assert getattr(gitstore, cls.__name__) is cls
        if cls is not model.Artifact:  # what a put takes, never sent anywhere
            assert callable(getattr(cls, "to_dict", None)), cls.__name__


@pytest.mark.parametrize(
    "args",
    [
        ["ls", "nospec"],
        ["verify", "nospec"],
        ["scan", "nospec"],
        ["log", "nospec", "--jsonl"],
        ["verify", "s/nosuchtask"],
        ["scan", "s/nosuchtask"],
        ["log", "s/nosuchtask", "--jsonl"],
    ],
)
def test_a_scope_that_matches_nothing_is_not_found_everywhere(
    tmp_path: Path, args: list[str]
) -> None:
    store = tmp_path / "s.git"
    with gitstore.Store.open(store, create=True) as s:
        s.put("s/t", {"a": "1"})
    result = CliRunner().invoke(cli, ["--store", str(store), *args])
    assert result.exit_code == 4, (args, result.output)
    assert result.stderr.startswith("gitstore: no ")


def test_the_cli_prints_the_librarys_shapes(tmp_path: Path) -> None:
    store = tmp_path / "s.git"
    with gitstore.Store.open(store, create=True) as s:
        s.put("s/t", {"a": "1"})
        s.put("s/t", {"a": "2"})
        expected = {
            ("ls",): [x.to_dict() for x in s.spec_summaries()],
            ("ls", "s"): [x.to_dict() for x in s.task_heads("s")],
            ("diff", "s/t"): s.diff("s/t").to_dict(),
            ("show", "s/t"): s.show("s/t").to_dict(),
        }
    for args, shape in expected.items():
        out = CliRunner().invoke(cli, ["--store", str(store), *args, "--json"]).stdout
        assert json.loads(out) == shape, args
