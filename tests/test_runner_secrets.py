"""Secrets never stored by accident: masking on the way in, and scanning what is stored.

Written from a runner's point of view: a log carries a token from the environment, the store
keeps it masked and records how many were masked, never the secret.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from gitstore import Artifact, Store
from gitstore.cli.main import cli
from gitstore.secrets import Masker

# The store fixture's tests also run against a store served over HTTP (see conftest.py).
pytestmark = pytest.mark.served

GH = "ghp_" + "Z9y8X7w6" * 5
ENV_TOKEN = "env-token-value-1234"


def test_put_masks_only_when_asked(store: Store) -> None:
    plain = store.put("s/t", {"log.log": f"token is {GH}\n"})
    assert store.text(plain.artifact("log.log").uri) == f"token is {GH}\n"
    assert plain.artifact("log.log").masked_secrets == 0
    v = store.put("s/t", {"log.log": f"token is {GH}\n"}, mask_secrets=Masker(env={}))
    assert store.text(v.artifact("log.log").uri) == "token is ***MASKED***\n"
    assert v.artifact("log.log").masked_secrets == 1


def test_a_token_from_the_environment_is_masked_and_counted(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOY_TOKEN", ENV_TOKEN)
    log = tmp_path / "run.log"
    log.write_text(f"step 1\nusing {ENV_TOKEN}\nagain {ENV_TOKEN}\n")
    v = store.put("s/t", {"log.log": log}, mask_secrets=True)
    art = v.artifact("log.log")
    assert store.text(art.uri) == "step 1\nusing ***MASKED***\nagain ***MASKED***\n"
    assert art.masked_secrets == 2
    assert ENV_TOKEN not in repr(v.to_dict())  # the count is recorded, never the secret


def test_big_streams_and_folders_are_masked_and_binary_is_left_alone(
    store: Store, tmp_path: Path
) -> None:
    line = b"x" * 200 + b"\n"
    big = line * 8000 + f"late {GH}\n".encode()  # > 1 MiB: the streamed path
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.txt").write_bytes(f"{GH}\n".encode())
    binary = b"\x89PNG\r\n\x1a\n" + GH.encode()  # an image: a token shape in it is noise
    v = store.put(
        "s/t",
        {"big.log": io.BytesIO(big), "out": tmp_path / "out", "blob.bin": binary},
        mask_secrets=Masker(env={}),
    )
    assert store.get(v.artifact("big.log").uri) == line * 8000 + b"late ***MASKED***\n"
    assert v.artifact("out/a.txt").masked_secrets == 1
    assert store.get(v.artifact("blob.bin").uri) == binary
    assert v.artifact("blob.bin").masked_secrets == 0


def test_an_artifact_already_masked_is_not_masked_again(store: Store) -> None:
    v = store.put(
        "s/t",
        {"log.log": Artifact(f"kept {GH}", masked_secrets=3)},
        mask_secrets=Masker(env={}),
    )
    assert v.artifact("log.log").masked_secrets == 3
    assert store.text(v.artifact("log.log").uri) == f"kept {GH}"


def test_cli_put_mask_secrets(tmp_path: Path) -> None:
    log = tmp_path / "log.log"
    log.write_text(f"Authorization: Bearer {GH}\n")
    runner = CliRunner()
    args = ["--store", str(tmp_path / "s.git"), "put", "s/t", str(log)]
    assert runner.invoke(cli, [*args, "--mask-secrets"]).exit_code == 0
    got = runner.invoke(cli, ["--store", str(tmp_path / "s.git"), "get", "s/t", "log.log"])
    assert got.output == "Authorization: Bearer ***MASKED***\n"
    plain = runner.invoke(cli, [*args[:-2], "s/u", str(log)])
    assert plain.exit_code == 0
    got = runner.invoke(cli, ["--store", str(tmp_path / "s.git"), "get", "s/u", "log.log"])
    assert got.output == f"Authorization: Bearer {GH}\n"


# -- scan ------------------------------------------------------------------------------------


@pytest.mark.local_only("scan reads every blob and raw commit, where the store is")
def test_scan_names_task_version_artifact_and_line_never_the_secret(store: Store) -> None:
    old = store.put("s/t", {"log.log": f"ok\nleaked {GH}\n", "blob.gz": b"\x1f\x8b" + GH.encode()})
    store.put("s/t", {"log.log": "clean now\n"})
    store.put("s/u", {"a.txt": "nothing here\n"})
    findings = store.scan()
    assert [(f.spec, f.task, f.commit, f.name, f.line, f.kind) for f in findings] == [
        ("s", "t", old.commit, "log.log", 2, "github token")
    ]
    assert GH not in str(findings[0]) and GH not in repr(findings[0].to_dict())
    assert store.scan("s/u") == [] and len(store.scan("s")) == 1


@pytest.mark.local_only("scan reads every blob and raw commit, where the store is")
def test_scan_reads_big_artifacts_in_pieces(store: Store) -> None:
    big = b"x" * 99 + b"\n"
    store.put("s/t", {"big.log": big * 30_000 + b"AKIAABCDEFGHIJKLMNOP\n"})
    (f,) = store.scan("s/t")
    assert (f.line, f.kind) == (30_001, "aws access key")


def test_cli_scan_exits_20_naming_artifact_and_line(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.git", create=True) as s:
        s.put("s/t", {"log.log": f"a\nb {GH}\n"})
        s.put("s/u", {"log.log": "clean\n"})
    runner = CliRunner()
    base = ["--store", str(tmp_path / "s.git"), "scan"]
    found = runner.invoke(cli, base)
    assert found.exit_code == 20
    assert "log.log:2: github token" in found.output and GH not in found.output
    assert runner.invoke(cli, [*base, "--json"]).exit_code == 20
    clean = runner.invoke(cli, [*base, "s/u"])
    assert (clean.exit_code, clean.output) == (0, "ok: no secrets found\n")
    assert runner.invoke(cli, [*base, "s/nope"]).exit_code == 4
