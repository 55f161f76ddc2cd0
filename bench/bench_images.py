"""Size and build time of every image, cold and cached -> bench/results/images.json.

    uv run python bench/bench_images.py

Cold: ``images.build(fresh=True)``, every step rebuilt with ``--no-cache``
(the base stand-ins already made, the package index's downloads not
cached by anything). Cached: ``images.build()`` right after, which finds each
image by the hash of its inputs. Sizes are uncompressed, base layers
included, as ``podman images`` shows them. Not part of ``make bench``: it
needs podman and takes minutes of both cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import provenance

from ticklake.devstack import images

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "bench" / "results" / "images.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    provenance.add_argument(parser)
    stamp = provenance.stamp(parser.parse_args().allow_dirty)
    started = time.monotonic()
    cold = images.build(fresh=True)
    cold_total = time.monotonic() - started
    started = time.monotonic()
    cached = images.build()
    cached_total = time.monotonic() - started
    bases: dict[str, float | None] = {}
    for ref in (images.PYTHON_BASE, images.DEBIAN_BASE):
        described = images.inspect(ref)
        bases[ref] = round(int(str(described["Size"])) / 1e6, 1) if described else None
    podman_version = images.podman("--version").stdout.strip()
    commit = stamp["git_commit"][:7] + ("-dirty" if stamp["dirty"] else "")
    result = {
        "command": "uv run python bench/bench_images.py",
        "commit": commit,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "podman": podman_version,
        },
        "images": {
            c.name: {
                "ref": c.ref,
                "size_mb": round(c.size_bytes / 1e6, 1),
                "cold_build_s": round(c.seconds, 1),
                "cached_build_s": round(k.seconds, 2),
                "cached": k.cached,
            }
            for c, k in zip(cold, cached, strict=True)
        },
        "base_sizes_mb": bases,
        "cold_total_s": round(cold_total, 1),
        "cached_total_s": round(cached_total, 2),
        **stamp,
    }
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print("| image | size (MB) | cold build (s) | cached (s) |\n|---|---|---|---|")
    for name, row in result["images"].items():
        print(f"| {name} | {row['size_mb']:.0f} | {row['cold_build_s']:.0f} | "
              f"{row['cached_build_s']:.1f} |")  # fmt: skip
    print(f"total: cold {cold_total:.0f} s, cached {cached_total:.1f} s -> {RESULT}")
    # docs/images.md shows these figures (its table is generated from the file).
    return subprocess.run([sys.executable, str(ROOT / "tools" / "images_doc.py")]).returncode


if __name__ == "__main__":
    raise SystemExit(main())
