"""The Dockerfiles' build stage, replayed without Docker.

No Docker engine is available, so the build stage of each Dockerfile is read
and replayed on the host: its ``COPY`` lines copy the same files into a
staging folder and its ``RUN uv sync ...`` lines run there with its ``ENV``
(the virtualenv path redirected into the staging folder). Then the sources
are deleted, which is what the runtime stage amounts to (it copies only the
virtualenv), and the entry point must still start. This proves the lockfile
commands work for each package, that the image holds that package and not the
others, and that nothing in it points back at the build stage's sources.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from chartkit import ROOT

IMAGES = {
    # Dockerfile: (module that must import, modules that must not, entry point)
    "services/producer/Dockerfile": (
        "ticklake.producer.cli",
        ["ticklake.ingest", "ticklake.query"],
    ),
    "services/ingest/Dockerfile": ("ticklake.ingest.cli", ["ticklake.producer", "ticklake.query"]),
    "services/query-api/Dockerfile": (
        "ticklake.query.cli",
        ["ticklake.producer", "ticklake.ingest"],
    ),
    "operator/Dockerfile": ("ticklake.operator.cli", ["ticklake.producer", "ticklake.devstack"]),
}


def build_stage(dockerfile: Path) -> list[str]:
    text = dockerfile.read_text().replace("\\\n", " ")
    stage = text.split("\nFROM python:3.11-slim\n", 1)[0]
    return [
        line.strip() for line in stage.splitlines() if line.strip() and not line.startswith("#")
    ]


def entrypoint(dockerfile: Path) -> list[str]:
    m = re.search(r'^ENTRYPOINT \["([^"]+)"\]', dockerfile.read_text(), re.M)
    assert m, dockerfile
    return [m.group(1)]


def replay(dockerfile: Path, staging: Path) -> Path:
    """Run the build stage's COPY and uv steps; the virtualenv it made."""
    src, venv = staging / "src", staging / "venv"
    src.mkdir(parents=True)
    env: dict[str, str] = {}
    for line in build_stage(dockerfile):
        if line.startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", line[4:]))
        elif line.startswith("COPY "):
            *sources, dest = line.split()[1:]
            for source in sources:
                path = ROOT / source
                if path.is_dir():
                    skip = shutil.ignore_patterns("__pycache__", ".venv")
                    shutil.copytree(path, src / dest, dirs_exist_ok=True, ignore=skip)
                else:
                    target = src / dest
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy(path, target / path.name)
        elif line.startswith("RUN uv "):
            run_env = {**os.environ, **env, "UV_PROJECT_ENVIRONMENT": str(venv)}
            # Bytecode and copies are image-size/start-up choices; skip them here.
            run_env.update(UV_COMPILE_BYTECODE="0", UV_LINK_MODE="hardlink")
            run_env.pop("VIRTUAL_ENV", None)
            result = subprocess.run(
                line[len("RUN ") :], shell=True, cwd=src, env=run_env,
                capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            assert result.returncode == 0, f"{line}\n{result.stderr}"
    shutil.rmtree(src)  # the runtime stage keeps only the venv
    return venv


@pytest.mark.parametrize("dockerfile", sorted(IMAGES))
def test_build_stage_installs_only_its_package_from_the_lockfile(
    dockerfile: str, tmp_path: Path
) -> None:
    module, absent = IMAGES[dockerfile]
    venv = replay(ROOT / dockerfile, tmp_path)
    python = str(venv / "bin" / "python")
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/tmp"}
    probe = (
        "import importlib.util, sys\n"
        f"import {module}\n"
        f"missing = [m for m in {absent!r} if importlib.util.find_spec(m) is None]\n"
        f"sys.exit(0 if missing == {absent!r} else 'present: ' + repr(missing))\n"
    )
    result = subprocess.run([python, "-c", probe], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    (script,) = entrypoint(ROOT / dockerfile)
    result = subprocess.run([str(venv / "bin" / script), "--help"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()
