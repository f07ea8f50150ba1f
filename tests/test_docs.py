"""The README stays true to the code: commands, options, exit codes, the two opening commands and
the library example (which is run)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import click
import pytest

import gitstore.cli.main as cli_main
import gitstore.errors
from gitstore.cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
DEMO_COMMAND = (
    'python3 -m venv .venv && .venv/bin/pip install -q -e . && PATH="$PWD/.venv/bin:$PATH" '
    "bash demo.sh"
)
TEST_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/pytest"
COMMANDS = sorted(cli.commands)


def section(title: str) -> str:
    """The README text under ``## title`` up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def exit_table() -> dict[int, str]:
    """Exit code -> the rest of its row in the README's table."""
    rows = re.findall(r"^\| (\d+) \|(.*)\|$", section("Exit codes"), re.M)
    codes = [int(code) for code, _ in rows]
    assert len(codes) == len(set(codes)), "an exit code appears twice"
    return {int(code): rest for code, rest in rows}


def test_readme_opens_with_the_demo_and_test_commands() -> None:
    blocks = re.findall(r"```sh\n(.*?)\n```", README, re.S)
    assert blocks[:2] == [DEMO_COMMAND, TEST_COMMAND]
    assert README.index(DEMO_COMMAND) < README.index("## ")


def test_ci_runs_the_readme_test_command() -> None:
    assert TEST_COMMAND in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_group_has_help() -> None:
    assert cli.help and cli.help.strip()


@pytest.mark.parametrize("name", COMMANDS)
def test_command_has_help(name: str) -> None:
    command = cli.commands[name]
    assert command.help and command.help.strip(), f"gitstore {name} has no help"
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"gitstore {name} {param.opts[0]} has no help"


@pytest.mark.parametrize("name", COMMANDS)
def test_command_is_in_readme(name: str) -> None:
    assert f"`gitstore {name}" in section("Using the CLI"), f"README does not show gitstore {name}"


@pytest.mark.parametrize("name", COMMANDS)
def test_command_options_are_in_readme(name: str) -> None:
    for param in cli.commands[name].params:
        if isinstance(param, click.Option) and "--help" not in param.opts:
            assert any(opt in README for opt in param.opts), (
                f"README does not mention {param.opts} of gitstore {name}"
            )


def test_exit_code_table_matches_the_error_classes() -> None:
    table = exit_table()
    for name in gitstore.errors.__all__:
        cls = getattr(gitstore.errors, name)
        assert inspect.isclass(cls) and issubclass(cls, gitstore.errors.GitstoreError)
        assert f"`{name}`" in table.get(cls.exit_code, ""), (
            f"README's exit code table does not list {name} under {cls.exit_code}"
        )


def test_exit_code_table_has_exactly_the_codes_gitstore_uses() -> None:
    library = {getattr(gitstore.errors, name).exit_code for name in gitstore.errors.__all__}
    cli_codes = {
        cli_main.EXIT_USAGE,
        cli_main.EXIT_INTERNAL,
        cli_main.EXIT_INTERRUPTED,
        cli_main.EXIT_PIPE,
    }
    assert set(exit_table()) == {0} | library | cli_codes


def test_figures_section_names_its_command_and_the_full_table() -> None:
    figures = section("Figures")
    assert "benchmarks/README.md" in figures
    assert "pytest benchmarks/ --benchmark-only" in figures
    assert "pytest benchmarks/ --benchmark-only" in (ROOT / "benchmarks" / "README.md").read_text()


def test_library_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (example,) = re.findall(r"```python\n(.*?)```", section("Using the library"), re.S)
    # The inputs the example reads, as an agent run would have left them.
    (tmp_path / "out" / "results").mkdir(parents=True)
    (tmp_path / "out" / "diff.diff").write_text("--- a/x\n+++ b/x\n")
    (tmp_path / "out" / "results" / "junit.xml").write_text("<testsuite/>\n")
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {})
    assert (tmp_path / "runs.git" / "refs" / "artifacts" / "fix-login" / "t1").is_file()
