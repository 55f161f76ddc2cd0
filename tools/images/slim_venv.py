"""Remove from a virtualenv what no ticklake program needs at run time.

Run in the Dockerfile's venv stages after ``uv sync``:
``python3 slim-venv /opt/ticklake/venv``. Standard library only (it runs in
the build stage, before anything is installed for it). Each rule says why it
is safe; the image tests (tests/devstack/test_images.py) import every
ticklake module inside each image and start each program, so a rule that
removes something needed fails there.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

# Directories of tests shipped inside wheels: nothing imports them at run time.
TEST_DIRS = frozenset({"tests"})

# Sources and headers for compiling against a package (Cython, C, C++):
# read by compilers only, never by the interpreter.
BUILD_ONLY_SUFFIXES = frozenset({".pyx", ".pxd", ".pxi", ".h", ".hpp", ".cc", ".cpp"})

# Per-package paths (globs relative to site-packages) for optional features
# ticklake never imports; importing them after this raises ImportError.
#   pyarrow/include, src: headers and C++ sources for building extensions.
#   Arrow Flight (RPC) and the C++ test module: 32 MB; ticklake uses Arrow
#   arrays, Parquet, compute, CSV and filesystems (local and S3), not Flight.
#   numpy's C headers: for compiling extensions against numpy.
#   DuckDB's experimental Spark API and its type stubs.
#   watchfiles: uvicorn imports it only for --reload (it falls back to its
#   stat-based reloader when absent); the programs never reload.
UNUSED = (
    "pyarrow/include",
    "pyarrow/src",
    "pyarrow/libarrow_flight.so*",
    "pyarrow/libarrow_python_flight.so*",
    "pyarrow/_flight.*.so",
    "pyarrow/flight.py",
    "pyarrow/_pyarrow_cpp_tests.*.so",
    "numpy/_core/include",
    "numpy/core/include",
    "duckdb/experimental",
    "_duckdb-stubs",
    "watchfiles",
    "watchfiles-*.dist-info",
)

# Type stubs are read by type checkers only.
STUB_SUFFIXES = frozenset({".pyi"})

# Shared libraries are stripped of their symbol tables and debug sections
# (strip --strip-unneeded, as Debian does for every library it ships): the
# dynamic symbols the loader needs stay. Many wheels ship unstripped ones
# (uvloop 13.6 MB -> 1.6 MB, Arrow's libraries lose a fifth). Not those in
# "<package>.libs" folders: auditwheel grafted them there and patchelf
# rewrote their headers, which strip breaks ("ELF load command address/offset
# not page-aligned", seen with numpy's OpenBLAS).

# Packages whose files are never removed by the generic rules: ours.
KEEP_PACKAGES = frozenset({"ticklake"})


def site_packages(venv: Path) -> Path:
    (path,) = venv.glob("lib/python3*/site-packages")
    return path


def remove(path: Path) -> int:
    """Delete a file or tree; the bytes freed."""
    if path.is_symlink() or path.is_file():
        size = path.lstat().st_size
        path.unlink()
        return size
    size = sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir())
    shutil.rmtree(path)
    return size


def link_duplicates(directory: Path) -> int:
    """Replace byte-identical files in one folder by symlinks to the first.

    Wheels cannot hold symlinks, so shared libraries arrive as full copies
    under each of their names (libx.so, libx.so.N, libx.so.N.M); a symlink
    reads the same bytes.
    """
    freed = 0
    by_content: dict[tuple[int, str], Path] = {}
    for path in sorted(p for p in directory.iterdir() if p.is_file() and not p.is_symlink()):
        size = path.stat().st_size
        if size < 64 * 1024:
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        first = by_content.setdefault((size, digest), path)
        if first != path:
            path.unlink()
            path.symlink_to(first.name)
            freed += size
    return freed


def is_shared_library(path: Path) -> bool:
    name = path.name
    if path.is_symlink() or not (name.endswith(".so") or ".so." in name):
        return False
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def strip_libraries(root: Path) -> int:
    """Strip every shared library under ``root``; the bytes freed."""
    strip = shutil.which("strip")
    if strip is None:
        raise SystemExit("slim-venv: strip not found (install binutils in the build stage)")
    libraries = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and is_shared_library(p)
        and not any(part.endswith(".libs") for part in p.relative_to(root).parts)
    )
    before = sum(p.stat().st_size for p in libraries)
    for start in range(0, len(libraries), 200):
        batch = [str(p) for p in libraries[start : start + 200]]
        subprocess.run([strip, "--strip-unneeded", *batch], check=True)
    return before - sum(p.stat().st_size for p in libraries)


def slim(venv: Path) -> int:
    """Apply every rule to ``venv``; the bytes freed."""
    root = site_packages(venv)
    freed = 0
    for pattern in UNUSED:
        for path in root.glob(pattern):
            freed += remove(path)
    for top in sorted(root.iterdir()):
        if top.name in KEEP_PACKAGES or not top.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            here = Path(dirpath)
            for name in [d for d in dirnames if d in TEST_DIRS]:
                freed += remove(here / name)
                dirnames.remove(name)
            for name in filenames:
                if Path(name).suffix in BUILD_ONLY_SUFFIXES | STUB_SUFFIXES:
                    freed += remove(here / name)
            freed += link_duplicates(here)
    return freed + strip_libraries(root)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: slim-venv VENV", file=sys.stderr)
        return 2
    venv = Path(argv[1])
    if not (venv / "pyvenv.cfg").is_file():
        print(f"slim-venv: {venv} is not a virtualenv (no pyvenv.cfg)", file=sys.stderr)
        return 2
    freed = slim(venv)
    print(f"slim-venv: {freed / 1e6:.1f} MB removed from {venv}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
