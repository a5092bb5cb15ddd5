"""The wheel ships every subpackage, and each package re-exports a complete, sorted `__all__`."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE_DIRS: dict[str, str] = CONFIG["tool"]["setuptools"]["package-dir"]


def _packages_on_disk() -> set[str]:
    found: set[str] = set()
    for name, folder in PACKAGE_DIRS.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            found.add(".".join([name, *rel.parts]))
    return found


def test_every_subpackage_is_listed_in_pyproject() -> None:
    listed = set(CONFIG["tool"]["setuptools"]["packages"])
    missing = sorted(_packages_on_disk() - listed)
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {missing}"
    stale = sorted(listed - _packages_on_disk())
    assert not stale, f"these are listed in pyproject.toml but have no __init__.py: {stale}"


def test_every_package_has_py_typed() -> None:
    for folder in PACKAGE_DIRS.values():
        assert (ROOT / folder / "py.typed").is_file(), folder


def _isort_style(name: str) -> tuple[int, str]:
    """ruff's order for `__all__` (RUF022): CONSTANTS, then Classes, then functions."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


def test_all_is_sorted_and_complete() -> None:
    for name in sorted(_packages_on_disk()):
        module = importlib.import_module(name)
        exported = list(getattr(module, "__all__", []))
        assert exported == sorted(exported, key=_isort_style), f"{name}.__all__ is not sorted"
        public = {
            attr
            for attr, value in vars(module).items()
            if not attr.startswith("_")
            and not isinstance(value, type(importlib))
            and getattr(value, "__module__", name).startswith("moot.")
        }
        missing = sorted(public - set(exported))
        assert not missing, f"{name} defines public names missing from __all__: {missing}"
        for attr in exported:
            assert hasattr(module, attr), f"{name}.__all__ names {attr}, which does not exist"


def test_no_bare_top_level_packages_are_importable() -> None:
    import importlib.util

    for bare in ("runtime", "agents", "executors"):
        spec = importlib.util.find_spec(bare)
        assert spec is None or "site-packages" not in str(spec.origin), bare


def test_no_namespace_exports_more_than_sixty_names() -> None:
    for name in sorted(_packages_on_disk()):
        exported = getattr(importlib.import_module(name), "__all__", [])
        assert len(exported) <= 60, f"{name} exports {len(exported)} names; split it or trim it"
