"""The build-time smoke test, run by the image's own Python inside the new root (stdlib only).

For each requested Debian package, `<dir>/<package>.list` holds its `dpkg-deb -c` listing; every
top-level Python module the package ships is imported. The first failure prints one line,
`moot-smoke: FAIL <package> <module> <error>`, which the builder turns into a typed error.
"""

from __future__ import annotations

import importlib
import os
import re
import sys

_MODULE = re.compile(
    r"\./usr/lib/python3(?:\.\d+)?/dist-packages/([A-Za-z_][A-Za-z0-9_]*)(?:/|\.py$|\..*\.so$)"
)


def modules_of(listing: str) -> list[str]:
    """Top-level importable names in a `dpkg-deb -c` listing, in order of first appearance."""
    found: dict[str, None] = {}
    for line in listing.splitlines():
        fields = line.split(None, 5)  # mode owner size date time path[ -> target]
        if len(fields) < 6:
            continue
        match = _MODULE.match(fields[5].split(" -> ")[0])
        if match:
            found.setdefault(match.group(1))
    return list(found)


def main(directory: str) -> int:
    """Import every module of every listed package; print one line per result."""
    failed = 0
    for entry in sorted(os.listdir(directory)):
        if not entry.endswith(".list"):
            continue
        package = entry.removesuffix(".list")
        with open(os.path.join(directory, entry), encoding="utf-8", errors="replace") as handle:
            names = modules_of(handle.read())
        for name in names:
            try:
                importlib.import_module(name)
            except BaseException as exc:  # a smoke test reports whatever the import raised
                detail = f"{type(exc).__name__}: {exc}".replace("\n", " ")
                sys.stderr.write(f"moot-smoke: FAIL {package} {name} {detail}\n")
                failed += 1
                break
        else:
            imported = " ".join(names) or "(no Python modules)"
            sys.stderr.write(f"moot-smoke: ok {package} {imported}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
