"""The library's layers, checked: who may import whom (one way only), where dulwich and click may
be imported, what the CLI may use, no reach into another module's privates, no import cycle.

Every module's imports are read with ``ast``: module-level ones, those inside functions (lazy
imports) and those under ``TYPE_CHECKING`` alike. The rules run on this repository, and once more
on a small made-up package that breaks each of them, so that none can pass by checking nothing.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Lowest first. A module may import modules of its own layer or of lower ones, never higher. A
# module belongs to the longest name here that is it or one of its packages; the package
# "gitstore" itself (its __init__: the public names) has a layer of its own, above the library.
LAYERS: list[tuple[str, ...]] = [
    ("gitstore.errors", "gitstore.names"),
    ("gitstore.meta", "gitstore.model"),
    (
        "gitstore._fs",
        "gitstore._io",
        "gitstore._zlib",
        "gitstore.secrets",
        "gitstore.statcache",
        "gitstore.credentials",
        # The retention planner: pure, it reads plain values and no store.
        "gitstore.retention",
        "gitstore.remoteheads",
    ),
    ("gitstore.backend",),
    ("gitstore.cas", "gitstore.aliases", "gitstore.versions", "gitstore.records"),
    (
        "gitstore.ingest",
        "gitstore.validate",
        "gitstore.verify",
        "gitstore.export",
        "gitstore.scan",
        "gitstore.gc",
        "gitstore.retain",
        "gitstore.rewrite",
        "gitstore.purge",
        "gitstore.quota",
        "gitstore.du",
    ),
    # The HTTP client is a Store (a subclass speaking to a served one), so it sits beside it.
    ("gitstore.store", "gitstore.client"),
    (
        "gitstore.query",
        "gitstore.capture",
        "gitstore.failures",
        "gitstore.runner",
        "gitstore.remote",
        "gitstore.tokens",
    ),
    ("gitstore",),
    ("gitstore.server", "gitstore.cli", "gitstore.__main__", "cli"),
]
PACKAGE = "gitstore"
# Who may import these third-party packages (names and their subpackages).
ONLY = {
    "dulwich": ("gitstore.backend", "gitstore.remote"),
    "click": ("gitstore.cli", "cli"),
    # Progress bars are the CLI's look; the library reports progress through callbacks.
    "tqdm": ("gitstore.cli", "cli"),
}
# These face users (a terminal, HTTP): they use the library as its users do, through the names
# `gitstore` exports (`from gitstore import X`, X in gitstore.__all__).
FRONTS = ("gitstore.server", "gitstore.cli", "cli")
# Imports of the CLI that load a module of the library directly, when a command runs, so that
# `gitstore --help` does not load the transports; every name they use is exported too. The
# packaging work (lazy public names in gitstore/__init__.py) makes them `from gitstore import X`;
# each entry is checked to still be needed, so the list only shrinks.
FRONT_EXCEPTIONS = {
    ("cli.remote", "gitstore.remote"),
}
# Underscore names that are public API by convention (namedtuple's).
PUBLIC_UNDERSCORE = {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}


@dataclasses.dataclass
class Import:
    """One import: by ``source``, of module ``target`` (and ``names`` from it), at ``line``."""

    source: str
    target: str
    names: tuple[str, ...]
    line: int


@dataclasses.dataclass
class Module:
    name: str
    path: Path  # relative to the folder holding the package
    tree: ast.Module


def modules(roots: Sequence[Path]) -> dict[str, Module]:
    """Every module under the package folders ``roots``, by dotted name."""
    found = {}
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if ".venv" in path.parts:
                continue
            parts = list(path.relative_to(root.parent).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join(parts)
            rel = path.relative_to(root.parent)
            found[name] = Module(name, rel, ast.parse(path.read_text(), str(rel)))
    return found


def imports(mod: Module, known: set[str]) -> Iterator[Import]:
    """Every import ``mod`` makes, anywhere in it; ``from pkg import sub`` is an import of the
    module ``pkg.sub`` when that is a module in ``known``."""
    package = mod.name if mod.path.name == "__init__.py" else mod.name.rpartition(".")[0]
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(mod.name, alias.name, (), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            plain = []
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    yield Import(mod.name, f"{base}.{alias.name}", (), node.lineno)
                else:
                    plain.append(alias.name)
            if plain:
                yield Import(mod.name, base, tuple(plain), node.lineno)


def within(name: str, prefixes: Sequence[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def layer_of(name: str, layers: Sequence[tuple[str, ...]], package: str) -> int | None:
    best: tuple[int, int] | None = None  # (length of the matching name, layer)
    for index, members in enumerate(layers):
        for member in members:
            matches = name == member or (member != package and name.startswith(member + "."))
            if matches and (best is None or len(member) > best[0]):
                best = (len(member), index)
    return None if best is None else best[1]


def exported(mods: dict[str, Module], package: str) -> set[str]:
    """The names in the package's ``__all__``, read from its ``__init__``."""
    for node in ast.walk(mods[package].tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return set(ast.literal_eval(node.value))
    return set()


def is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def check(
    roots: Sequence[Path],
    *,
    layers: Sequence[tuple[str, ...]] = LAYERS,
    package: str = PACKAGE,
    only: dict[str, tuple[str, ...]] = ONLY,
    fronts: Sequence[str] = FRONTS,
    front_exceptions: set[tuple[str, str]] | frozenset[tuple[str, str]] = frozenset(),
) -> dict[str, list[str]]:
    """Every rule's violations in the packages at ``roots``: rule name -> one line each."""
    mods = modules(roots)
    known = set(mods)
    public = exported(mods, package) if package in mods else set()
    found: dict[str, list[str]] = {
        r: [] for r in ("layer", "third-party", "front", "private", "cycle", "unused-exception")
    }
    edges: dict[str, set[str]] = {name: set() for name in mods}
    used_exceptions: set[tuple[str, str]] = set()
    for name, mod in sorted(mods.items()):
        mine = layer_of(name, layers, package)
        if mine is None:
            found["layer"].append(f"{name} is in no layer (add it to the table)")
            continue
        for imp in imports(mod, known):
            where = f"{mod.path}:{imp.line}"
            for third, allowed in only.items():
                if within(imp.target, [third]) and not within(name, allowed):
                    found["third-party"].append(f"{where}: {name} imports {imp.target}")
            if imp.target not in known:
                continue
            if imp.target != name:
                edges[name].add(imp.target)
            theirs = layer_of(imp.target, layers, package)
            if theirs is not None and theirs > mine:
                found["layer"].append(
                    f"{where}: {name} (layer {mine}) imports {imp.target} (layer {theirs})"
                )
            # A front may use its own modules and the other fronts (the CLI starts the server);
            # of the library, only what the package exports.
            if (
                within(name, fronts)
                and within(imp.target, [package])
                and not within(imp.target, fronts)
            ):
                if imp.target != package:
                    if (name, imp.target) in front_exceptions:
                        used_exceptions.add((name, imp.target))
                    else:
                        found["front"].append(f"{where}: {name} imports {imp.target}")
                for n in imp.names:
                    if n not in public and (name, imp.target) not in front_exceptions:
                        found["front"].append(f"{where}: {name} imports {n}, not exported")
            for n in imp.names:
                if n.startswith("_") and not is_dunder(n):
                    found["private"].append(f"{where}: {name} imports {n} from {imp.target}")
        for node in ast.walk(mod.tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not is_dunder(node.attr)
                and node.attr not in PUBLIC_UNDERSCORE
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                found["private"].append(
                    f"{mod.path}:{node.lineno}: {name} reads {ast.unparse(node)}"
                )
    for unused in sorted(set(front_exceptions) - used_exceptions):
        found["unused-exception"].append(f"{unused} is no longer needed: remove it")
    found["cycle"] = [f"these import each other, in a cycle: {', '.join(c)}" for c in cycles(edges)]
    return found


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: each strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


@pytest.fixture(scope="module")
def found() -> dict[str, list[str]]:
    roots = [ROOT / "gitstore", ROOT / "cli"]
    return check([r for r in roots if r.is_dir()], front_exceptions=FRONT_EXCEPTIONS)


def test_each_module_imports_only_its_own_layer_or_lower_ones(found: dict[str, list[str]]) -> None:
    assert found["layer"] == []


def test_only_the_backend_and_the_remotes_import_dulwich_and_only_the_cli_click(
    found: dict[str, list[str]],
) -> None:
    assert found["third-party"] == []


def test_the_cli_uses_only_what_gitstore_exports(found: dict[str, list[str]]) -> None:
    assert found["front"] == []
    assert found["unused-exception"] == []


def test_no_module_reaches_into_another_modules_privates(found: dict[str, list[str]]) -> None:
    assert found["private"] == []


def test_imports_make_no_cycle(found: dict[str, list[str]]) -> None:
    assert found["cycle"] == []


# -- the checker itself, on a package that breaks every rule -------------------------------------

MADE_UP = {
    "pkg/__init__.py": '__all__ = ["Thing"]\nfrom pkg.top import Thing\n',
    "pkg/low.py": (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from pkg.top import Thing\n"  # upward, for type checking only: still upward
        "import dulwich.objects\n"  # dulwich outside the backend
        "import click\n"  # click outside the CLI
    ),
    "pkg/backend/__init__.py": "",
    "pkg/backend/store.py": "from dulwich.repo import Repo\n",  # allowed here
    "pkg/top.py": (
        "from pkg import low\n"
        "from pkg.low import _hidden\n"  # a private name of another module
        "class Thing:\n"
        "    def f(self) -> object:\n"
        "        from pkg import mid\n"  # a lazy import, same layer: fine
        "        return low._cache, self._mine\n"  # low._cache is a reach; self._mine is not
    ),
    "pkg/mid.py": "from pkg import top\n",  # top imports mid too: a cycle
    "pkg/stray.py": "",  # in no layer
    "front/main.py": (
        "from pkg import Thing\n"  # exported: fine
        "from pkg import low\n"  # a module of the library
        "from pkg.top import Thing as T\n"  # through a module, not the package
        "import click\n"
    ),
}
MADE_UP_LAYERS = [("pkg.low",), ("pkg.backend", "pkg.top", "pkg.mid"), ("pkg",), ("front",)]


def test_the_checker_reports_each_rule_broken_in_a_made_up_package(tmp_path: Path) -> None:
    for rel, text in MADE_UP.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    found = check(
        [tmp_path / "pkg", tmp_path / "front"],
        layers=MADE_UP_LAYERS,
        package="pkg",
        only={"dulwich": ("pkg.backend",), "click": ("front",)},
        fronts=("front",),
        front_exceptions={("front.main", "pkg.mid")},
    )
    joined = {rule: "\n".join(lines) for rule, lines in found.items()}
    assert "pkg.low (layer 0) imports pkg.top (layer 1)" in joined["layer"]
    assert "pkg.stray is in no layer" in joined["layer"]
    assert len(found["layer"]) == 2  # lazy imports within a layer and imports downward are fine
    assert "pkg.low imports dulwich.objects" in joined["third-party"]
    assert "pkg.low imports click" in joined["third-party"]
    assert len(found["third-party"]) == 2  # dulwich in the backend and click in front are fine
    assert "front.main imports pkg.low" in joined["front"]
    assert "front.main imports pkg.top" in joined["front"]
    assert "imports Thing," not in joined["front"]
    assert "pkg.top imports _hidden from pkg.low" in joined["private"]
    assert "pkg.top reads low._cache" in joined["private"]
    assert "_mine" not in joined["private"]
    # top and mid import each other (lazily), low and top too (for type checking only).
    assert found["cycle"] == ["these import each other, in a cycle: pkg.low, pkg.mid, pkg.top"]
    assert "('front.main', 'pkg.mid') is no longer needed" in joined["unused-exception"]
