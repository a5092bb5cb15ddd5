"""The import graph runs one way: groupchat → agents → models, executors, journal → runtime.

Every import of every module counts, including function-local and `TYPE_CHECKING` ones, because
each is a dependency a reader has to hold in mind. Across packages, code imports the public
`__init__` (`moot.models`), never another package's `_private` module.
"""

from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
    "setuptools"
]["package-dir"]

# Which packages each package may import (besides itself). cli, bench, testing and server sit on
# top and may use anything public.
# moot.observability (OpenTelemetry names and helpers) sits below everything and imports no moot.
_OBS = "moot.observability"
ALLOWED: dict[str, frozenset[str]] = {
    _OBS: frozenset(),
    "moot.runtime": frozenset({_OBS}),
    "moot.runtime.nats": frozenset({_OBS, "moot.runtime"}),
    "moot.models": frozenset({_OBS, "moot.runtime"}),
    "moot.executors": frozenset({_OBS, "moot.runtime"}),
    "moot.journal": frozenset({_OBS, "moot.runtime"}),
    "moot.agents": frozenset(
        {_OBS, "moot.runtime", "moot.models", "moot.executors", "moot.journal"}
    ),
    "moot.groupchat": frozenset(
        {_OBS, "moot.runtime", "moot.models", "moot.executors", "moot.agents", "moot.journal"}
    ),
}
TOP = frozenset({"moot.cli", "moot.bench", "moot.testing", "moot.server"})
PACKAGES = frozenset(ALLOWED) | TOP

# (importing module, imported module) pairs that break a rule on purpose, each with its reason.
EXCEPTIONS: dict[tuple[str, str], str] = {
    # AutoGen users import GroupChat beside the agents; a lazy module `__getattr__` hands them
    # moot.groupchat's, so moot.agents never imports the group chat at load time.
    ("moot.agents", "moot.groupchat"): "lazy re-export of GroupChat/GroupChatManager",
    # moot.observability sits below the runtime, yet its one error belongs to moot's one tree:
    # it subclasses ConfigError from moot.runtime._errors (which imports nothing of moot), loaded
    # lazily so the two packages never import each other at load time.
    ("moot.observability", "moot.runtime"): "ObservabilityConfigError joins the error tree",
}
PRIVATE_EXCEPTIONS = frozenset({("moot.observability._errors", "moot.runtime._errors")})


@dataclass(frozen=True, slots=True)
class Import:
    module: str  # the importing module, e.g. "moot.groupchat._manager"
    target: str  # the imported module, e.g. "moot.agents._chat"
    line: int

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.target}"


def _module_files() -> dict[str, Path]:
    files: dict[str, Path] = {}
    for package, folder in PACKAGE_DIRS.items():
        base = ROOT / folder
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            files[".".join([package, *parts])] = path
    return files


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _imports(module: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if _is_package(path) else module.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(tree):  # every import, at any depth: local and TYPE_CHECKING ones too
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append(Import(module, target, node.lineno))
            # `from moot.x import _private` imports a module as much as `import moot.x._private`
            found += [
                Import(module, f"{target}.{alias.name}", node.lineno)
                for alias in node.names
                if f"{target}.{alias.name}" in MODULES
            ]
    return [i for i in found if i.target.startswith("moot.")]


MODULES = _module_files()


def _package_of(module: str) -> str:
    """The package a module belongs to: the longest of PACKAGES that prefixes it."""
    owners = [p for p in PACKAGES if module == p or module.startswith(p + ".")]
    return max(owners, key=len)


def _all_imports() -> list[Import]:
    return [i for module, path in MODULES.items() for i in _imports(module, path)]


def _is_private(target: str, package: str) -> bool:
    rest = target.removeprefix(package).lstrip(".")
    return any(part.startswith("_") for part in rest.split(".") if part)


def test_every_module_is_in_a_known_package() -> None:
    assert {_package_of(m) for m in MODULES} == PACKAGES


def test_imports_only_point_down() -> None:
    upward = []
    for imp in _all_imports():
        source, target = _package_of(imp.module), _package_of(imp.target)
        if source == target or source in TOP:
            continue
        if target in ALLOWED[source] or (source, target) in EXCEPTIONS:
            continue
        upward.append(str(imp))
    assert not upward, "imports that point up or sideways:\n" + "\n".join(upward)


def test_other_packages_are_imported_through_their_public_init() -> None:
    private = []
    for imp in _all_imports():
        source, target = _package_of(imp.module), _package_of(imp.target)
        if (imp.module, imp.target) in PRIVATE_EXCEPTIONS:
            continue
        if source != target and _is_private(imp.target, target):
            private.append(str(imp))
    assert not private, "imports of another package's private modules:\n" + "\n".join(private)


def test_the_one_upward_exception_is_the_lazy_group_chat_re_export() -> None:
    uses = [
        imp
        for imp in _all_imports()
        if _package_of(imp.module) == "moot.agents" and _package_of(imp.target) == "moot.groupchat"
    ]
    assert [(u.module, u.target) for u in uses] == [("moot.agents", "moot.groupchat")]
    tree = ast.parse(MODULES["moot.agents"].read_text())
    lazy = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name == "__getattr__"
    ]
    assert lazy, "moot.agents reaches moot.groupchat only from its module __getattr__"
    inside = {n.lineno for n in ast.walk(lazy[0]) if isinstance(n, ast.Import | ast.ImportFrom)}
    assert {u.line for u in uses} <= inside


def test_the_checker_sees_relative_local_and_type_checking_imports(tmp_path: Path) -> None:
    source = tmp_path / "_mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from ._sibling import a\n"
        "from .. import agents\n"
        "if TYPE_CHECKING:\n"
        "    from moot.groupchat._state import GroupChatState\n"
        "def f():\n"
        "    import moot.agents._chat\n"
    )
    targets = {i.target for i in _imports("moot.models._mod", source)}
    assert targets == {
        "moot.models._sibling",
        "moot.agents",
        "moot.groupchat._state",
        "moot.agents._chat",
    }
