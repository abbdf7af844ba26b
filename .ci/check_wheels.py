"""Checks the wheels `make wheels` built: each one's tags, that it is abi3, that its extension
has the architecture its platform tag names, and that it needs nothing newer than the platform's
baseline (glibc 2.17 for manylinux2014, no glibc at all for musllinux, the tagged minimum macOS).

    python .ci/check_wheels.py DIR [--expect TAG ...]

Exits non-zero, naming the wheel and the problem, when a check fails or an expected platform
tag has no wheel. Reads ELF with binutils' `readelf` (any architecture); Mach-O by hand.
"""

from __future__ import annotations

import argparse
import re
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ELF_MACHINES = {0x3E: "x86_64", 0xB7: "aarch64"}
MACHO_CPUS = {0x01000007: "x86_64", 0x0100000C: "arm64"}
LC_BUILD_VERSION, LC_VERSION_MIN_MACOSX = 0x32, 0x24


def fail(wheel: str, why: str) -> None:
    raise SystemExit(f"{wheel}: {why}")


def version_tuple(text: str) -> tuple:
    return tuple(int(p) for p in text.split("."))


def check_elf(name: str, lib: Path, arch: str, platform: str) -> str:
    data = lib.read_bytes()
    if data[:4] != b"\x7fELF":
        fail(name, f"{lib.name} is not an ELF file")
    machine = ELF_MACHINES.get(struct.unpack_from("<H", data, 18)[0], "unknown")
    if machine != arch:
        fail(name, f"{lib.name} is {machine}, the tag says {arch}")
    versions = subprocess.run(["readelf", "-V", "-W", str(lib)], capture_output=True, text=True,
                              check=True).stdout
    glibc = sorted({version_tuple(v) for v in re.findall(r"GLIBC_([0-9.]+)", versions)})
    needed = re.findall(r"\(NEEDED\).*\[(.+)\]", subprocess.run(
        ["readelf", "-d", "-W", str(lib)], capture_output=True, text=True, check=True).stdout)
    if platform.startswith("manylinux"):
        m = re.match(r"manylinux_(\d+)_(\d+)", platform)
        base = (int(m.group(1)), int(m.group(2))) if m else (2, 17)
        if glibc and glibc[-1] > base:
            fail(name, f"needs GLIBC_{'.'.join(map(str, glibc[-1]))}, newer than {base}")
        return f"{machine}, glibc <= {'.'.join(map(str, glibc[-1])) if glibc else 'none'}, needs {needed}"
    if platform.startswith("musllinux"):
        if glibc:
            fail(name, f"a musllinux wheel that needs glibc symbols {glibc[-1]}")
        if any("libc.so.6" in n for n in needed):
            fail(name, "a musllinux wheel linked against glibc")
        return f"{machine}, no glibc, needs {needed}"
    fail(name, f"unknown Linux platform {platform}")
    return ""


def check_macho(name: str, lib: Path, arch: str, minimum: tuple) -> str:
    data = lib.read_bytes()
    magic, cpu = struct.unpack_from("<II", data, 0)
    if magic != 0xFEEDFACF:
        fail(name, f"{lib.name} is not a 64-bit Mach-O file")
    got = MACHO_CPUS.get(cpu, hex(cpu))
    if got != arch:
        fail(name, f"{lib.name} is {got}, the tag says {arch}")
    ncmds = struct.unpack_from("<I", data, 16)[0]
    off, minos = 32, None
    for _ in range(ncmds):
        cmd, size = struct.unpack_from("<II", data, off)
        if cmd == LC_BUILD_VERSION:
            raw = struct.unpack_from("<I", data, off + 12)[0]
            minos = (raw >> 16, (raw >> 8) & 0xFF)
        elif cmd == LC_VERSION_MIN_MACOSX:
            raw = struct.unpack_from("<I", data, off + 8)[0]
            minos = (raw >> 16, (raw >> 8) & 0xFF)
        off += size
    if minos is None:
        fail(name, "no minimum macOS version in the library")
    if minos > minimum:
        fail(name, f"needs macOS {minos}, the tag promises {minimum}")
    return f"{got}, macOS >= {minos[0]}.{minos[1]}"


def check(wheel: Path) -> str:
    name = wheel.name
    m = re.match(r"logitkit-[^-]+-(cp\d+)-(abi3)-(.+)\.whl$", name)
    if not m:
        fail(name, "not a cpXY-abi3 wheel")
    platforms = m.group(3).split(".")
    with zipfile.ZipFile(wheel) as z, tempfile.TemporaryDirectory() as tmp:
        names = z.namelist()
        tags = [line.split(": ", 1)[1] for line in z.read(
            next(n for n in names if n.endswith(".dist-info/WHEEL"))).decode().splitlines()
            if line.startswith("Tag: ")]
        want = {f"{m.group(1)}-abi3-{p}" for p in platforms}
        if set(tags) != want:
            fail(name, f"WHEEL tags {tags} do not match the file name's {sorted(want)}")
        libs = [n for n in names if re.search(r"logitkit/_native[^/]*\.(so|pyd)$", n)]
        if len(libs) != 1:
            fail(name, f"expected one extension module, found {libs}")
        lib_name = libs[0]
        if lib_name.endswith(".so") and not lib_name.endswith(".abi3.so"):
            fail(name, f"{lib_name} is not named as an abi3 module")
        lib = Path(z.extract(lib_name, tmp))
        platform = platforms[0]
        if "linux" in platform:
            arch = "aarch64" if platform.endswith("aarch64") else "x86_64"
            return check_elf(name, lib, arch, platform)
        if platform.startswith("macosx"):
            mm = re.match(r"macosx_(\d+)_(\d+)_(x86_64|arm64)", platform)
            return check_macho(name, lib, mm.group(3), (int(mm.group(1)), int(mm.group(2))))
        if platform.startswith("win"):
            if not lib_name.endswith(".pyd"):
                fail(name, "a Windows wheel without a .pyd")
            return "windows"
        fail(name, f"unknown platform {platform}")
    return ""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", type=Path)
    p.add_argument("--expect", nargs="*", default=[], help="platform tags that must have a wheel")
    a = p.parse_args()
    wheels = sorted(a.dir.glob("*.whl"))
    if not wheels:
        print(f"no wheels in {a.dir}", file=sys.stderr)
        return 1
    for w in wheels:
        print(f"ok  {w.name}: {check(w)}")
    names = " ".join(w.name for w in wheels)
    missing = [t for t in a.expect if t not in names]
    if missing:
        print(f"no wheel for: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
