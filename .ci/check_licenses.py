"""Checks that every artifact ships both license files (issue 21 #3).

Usage: ``python .ci/check_licenses.py DIST...`` with built wheels and sdists (files, or folders
holding them), and ``--crate`` to check ``cargo package --list`` of the working tree too.
Exits 1 naming each artifact that misses a file; prints one line per artifact checked.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

LICENSES = ("LICENSE-MIT", "LICENSE-APACHE")


def wheel_licenses(path: Path) -> set[str]:
    """The license files in a wheel's ``.dist-info/licenses`` (PEP 639's place for them)."""
    with zipfile.ZipFile(path) as z:
        return {
            name.split("/")[-1]
            for name in z.namelist()
            if name.count("/") == 2 and name.split("/")[0].endswith(".dist-info")
            and name.split("/")[1] == "licenses"
        }


def sdist_licenses(path: Path) -> set[str]:
    """The files at the root of an sdist (``NAME-VERSION/FILE``)."""
    with tarfile.open(path) as t:
        return {name.split("/")[1] for name in t.getnames() if name.count("/") == 1}


def crate_files() -> set[str]:
    out = subprocess.run(
        ["cargo", "package", "--list", "--allow-dirty", "--quiet"],
        check=True, capture_output=True, text=True,
    ).stdout
    return set(out.split())


def main(argv: list[str]) -> int:
    check_crate = "--crate" in argv
    paths: list[Path] = []
    for arg in (a for a in argv if a != "--crate"):
        p = Path(arg)
        paths.extend(sorted(p.glob("*.whl")) + sorted(p.glob("*.tar.gz")) if p.is_dir() else [p])
    found: list[tuple[str, set[str]]] = []
    for p in paths:
        if p.name.endswith(".whl"):
            found.append((p.name, wheel_licenses(p)))
        elif p.name.endswith(".tar.gz"):
            found.append((p.name, sdist_licenses(p)))
        else:
            print(f"check_licenses: not a wheel or an sdist: {p}", file=sys.stderr)
            return 2
    if check_crate:
        found.append(("crate (cargo package --list)", crate_files()))
    if not found:
        print("check_licenses: nothing to check", file=sys.stderr)
        return 2
    failed = 0
    for name, files in found:
        missing = [f for f in LICENSES if f not in files]
        if missing:
            failed += 1
            print(f"check_licenses: {name} lacks {', '.join(missing)}", file=sys.stderr)
        else:
            print(f"check_licenses: {name}: {', '.join(LICENSES)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
