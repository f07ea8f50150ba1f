"""What installing gitstore puts on a machine, and what importing it costs.

The wheel holds one top-level package, gitstore (the CLI inside it as gitstore.cli), and its
license; ``python -m gitstore`` is the command; importing gitstore, or starting the command for
``--help``, loads neither the store nor the network transports until they are used.
"""

from __future__ import annotations

import ast
import configparser
import csv
import importlib
import importlib.metadata
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import gitstore

ROOT = Path(__file__).resolve().parent.parent
# What a build must not see: the developer's venv and caches, and earlier builds (a stale build/
# folder would put deleted modules into the wheel).
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".benchmarks"
)


def fresh_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter (nothing imported yet), outside the repository."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT.parent, check=False
    )


def loaded_after(code: str) -> set[str]:
    """The modules a new interpreter has loaded once it has run ``code``."""
    result = fresh_python(f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))")
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    """The wheel ``pip wheel`` builds from a copy of the working tree, offline."""
    major = int(importlib.metadata.version("setuptools").split(".")[0])
    assert major >= 77, "the test extra installs setuptools>=77, the backend this test builds with"
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    shutil.copytree(ROOT, src, ignore=NOT_SOURCE)
    out = work / "dist"
    # Offline: no dependencies, no isolated build env to fill, no index, no version check.
    offline = ["--no-deps", "--no-build-isolation", "--no-index", "--disable-pip-version-check"]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "-w", str(out), "-q", *offline],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (path,) = out.glob("*.whl")
    with zipfile.ZipFile(path) as zf:
        yield zf


def dist_info(wheel: zipfile.ZipFile) -> str:
    (name,) = {n.split("/")[0] for n in wheel.namelist() if n.split("/")[0].endswith(".dist-info")}
    return name


def recorded(wheel: zipfile.ZipFile) -> list[str]:
    """The paths the wheel's RECORD lists: what pip installs into site-packages."""
    record = wheel.read(f"{dist_info(wheel)}/RECORD").decode()
    return [row[0] for row in csv.reader(record.splitlines()) if row]


def test_wheel_installs_one_top_level_package_gitstore_with_the_cli_inside(
    wheel: zipfile.ZipFile,
) -> None:
    paths = recorded(wheel)
    assert sorted(set(wheel.namelist())) == sorted(paths)
    assert {p.split("/")[0] for p in paths} == {"gitstore", dist_info(wheel)}
    assert "gitstore/cli/main.py" in paths
    assert "gitstore/__main__.py" in paths
    assert not [p for p in paths if p.startswith("cli/")]
    assert wheel.read(f"{dist_info(wheel)}/top_level.txt").decode().split() == ["gitstore"]
    # Every module of the source tree is in the wheel (a subpackage left out of pyproject's
    # package list installs fine in editable mode and is missing from every real install).
    sources = {
        f"gitstore/{p.relative_to(ROOT / 'gitstore').as_posix()}"
        for p in (ROOT / "gitstore").rglob("*.py")
    } | {f"gitstore/cli/{p.name}" for p in (ROOT / "cli").glob("*.py")}
    assert sources <= set(paths), sorted(sources - set(paths))


def test_wheel_carries_the_license_and_names_the_distribution(wheel: zipfile.ZipFile) -> None:
    info = dist_info(wheel)
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert wheel.read(f"{info}/licenses/LICENSE").decode() == license_text
    # The whole Apache-2.0 text, not a pointer to it.
    assert "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    metadata = wheel.read(f"{info}/METADATA").decode()
    headers = metadata.split("\n\n", 1)[0].splitlines()
    assert "Name: gitstore-artifacts" in headers
    assert "License-Expression: Apache-2.0" in headers
    assert "License-File: LICENSE" in headers


def test_the_gitstore_command_is_gitstore_cli_main(wheel: zipfile.ZipFile) -> None:
    entry_points = configparser.ConfigParser()
    entry_points.read_string(wheel.read(f"{dist_info(wheel)}/entry_points.txt").decode())
    assert dict(entry_points["console_scripts"]) == {"gitstore": "gitstore.cli.main:main"}
    module, _, func = entry_points["console_scripts"]["gitstore"].partition(":")
    assert callable(getattr(importlib.import_module(module), func))


def test_python_m_gitstore_runs_the_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gitstore", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT.parent,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: gitstore [OPTIONS] COMMAND")
    assert result.stderr == ""


def test_importing_gitstore_loads_neither_store_nor_transports() -> None:
    loaded = loaded_after("import gitstore")
    for module in ("gitstore.remote", "gitstore.merge", "gitstore.store", "dulwich.client"):
        assert module not in loaded
    assert not [m for m in loaded if m.split(".")[0] in ("dulwich", "urllib3")]


def test_cli_help_loads_neither_store_nor_dulwich() -> None:
    code = (
        "import contextlib, io\n"
        "from gitstore.cli.main import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    assert cli.main(['--help'], prog_name='gitstore', standalone_mode=False) == 0\n"
        "assert out.getvalue().startswith('Usage: gitstore')"
    )
    loaded = loaded_after(code)
    assert "gitstore.store" not in loaded
    assert "gitstore.remote" not in loaded
    assert not [m for m in loaded if m.split(".")[0] == "dulwich"]


def test_from_gitstore_import_pull_loads_the_transport_then() -> None:
    loaded = loaded_after(
        "from gitstore import pull\nimport gitstore.remote\nassert pull is gitstore.remote.pull"
    )
    assert "gitstore.remote" in loaded
    assert "dulwich.client" in loaded


def test_capture_stays_the_function_after_its_module_is_imported() -> None:
    """Importing gitstore.capture would otherwise bind the module over the public function."""
    result = fresh_python(
        "import gitstore.runner, gitstore\n"
        "from gitstore import capture\n"
        "from gitstore.capture import capture as function\n"
        "assert capture is function and gitstore.capture is function"
    )
    assert result.returncode == 0, result.stderr


def public_imports() -> tuple[set[str], dict[str, str]]:
    """The names gitstore/__init__.py imports for its users: loaded with the package, and lazily
    (the imports under ``if TYPE_CHECKING:``, as name -> module)."""
    tree = ast.parse((ROOT / "gitstore" / "__init__.py").read_text(encoding="utf-8"))
    eager: set[str] = set()
    lazy: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gitstore."):
            eager.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for inner in node.body:
                assert isinstance(inner, ast.ImportFrom) and inner.module, ast.unparse(inner)
                lazy.update({alias.asname or alias.name: inner.module for alias in inner.names})
    return eager, lazy


def test_all_lists_exactly_the_public_names() -> None:
    eager, lazy = public_imports()
    assert sorted(gitstore.__all__) == sorted(eager | set(lazy) | {"__version__"})
    assert len(gitstore.__all__) == len(set(gitstore.__all__))


def test_lazy_names_load_from_the_modules_type_checkers_are_told() -> None:
    _, lazy = public_imports()
    assert lazy == gitstore._LAZY


@pytest.mark.parametrize("name", gitstore.__all__)
def test_every_public_name_resolves(name: str) -> None:
    _, lazy = public_imports()
    value = getattr(gitstore, name)
    if name in lazy:
        assert value is getattr(importlib.import_module(lazy[name]), name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="'gitstore' has no attribute 'Stor'"):
        _ = gitstore.Stor  # type: ignore[attr-defined]
