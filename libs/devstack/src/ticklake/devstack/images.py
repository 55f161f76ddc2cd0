"""ticklake's container images, built with podman, without Docker or a registry.

Images (``NAMES``), each ``localhost/ticklake-<name>:<tag>``:

* ``producer``, ``ingest``, ``query-api``, ``operator``: targets of the
  repository's ``Dockerfile`` (``FROM python:3.11-slim``); default tag: the
  first 12 hex digits of a hash of their inputs (like skaffold's
  ``inputDigest``), so an unchanged image keeps its tag.
* ``kafka``: a single-node KRaft broker from the local stack's Maven jars on
  Debian's Java 17 (``tools/images/kafka``); tag: the Kafka version.
* ``redis``: Debian's redis-server, for the chart's Redis StatefulSet
  (``tools/images/redis``); tag ``REDIS_TAG``.

Where ``python:3.11-slim`` or ``debian:bookworm-slim`` is not in podman's
storage (nothing can be pulled here), a stand-in with the same name is made
from Debian 12 packages: the Debian one with mmdebstrap, the Python one from
it with ``tools/images/python/Dockerfile``. An existing image of that name
that ticklake did not make is never replaced.

API for the cluster fixture and the monitoring stack (keep it stable)::

    build(names=None, *, tag=None) -> list[BuiltImage]
        Build (or find already built) the named images, all by default.
        Idempotent: an image whose inputs are unchanged is not rebuilt
        (``BuiltImage.cached``). ``tag`` overrides the service images' tag
        (kafka and redis keep theirs). Serialised by a file lock, so
        concurrent callers build each image once.
    save_archive(refs, path) -> Path
        ``podman save --format docker-archive`` of several images into one
        file, for ``ctr -n k8s.io images import`` or ``kind load image-archive``.
    podman_build(context, dockerfile, ref, *, target=None, build_args=None) -> str
        One Dockerfile built as ``ref`` with the same flags (for skaffold.yaml's
        artifacts); returns the image ID.
    chart_values(images) -> dict
        Helm values that make the chart use these images (pullPolicy Never).
    podman(*args) -> CompletedProcess
        The one place podman is run, with this machine's runtime flags.

Everything podman stores lives in its default storage (as root
``/var/lib/containers/storage``), where kind's podman provider also looks.
Build stages left untagged by a build are pruned after it.
"""

from __future__ import annotations

import configparser
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ticklake.devstack import kafka, paths

log = logging.getLogger(__name__)

SERVICE_NAMES: Final = ("producer", "ingest", "query-api", "operator")
NAMES: Final = (*SERVICE_NAMES, "kafka", "redis")
REPOSITORY_PREFIX: Final = "localhost/ticklake-"
REDIS_TAG: Final = "7.0-bookworm"

PYTHON_BASE: Final = "docker.io/library/python:3.11-slim"
DEBIAN_BASE: Final = "docker.io/library/debian:bookworm-slim"

# Labels ticklake puts on what it builds: the hash of an image's inputs (to
# skip unchanged rebuilds) and, on the stand-in bases, their recipe's hash.
INPUTS_LABEL: Final = "dev.ticklake.inputs"
STANDIN_LABEL: Final = "dev.ticklake.standin"
# Bump to rebuild everything when the way inputs are hashed changes.
DIGEST_VERSION: Final = "1"

# Runtime flags this machine needs (docs/images.md): runc, not crun (hybrid
# cgroups), cgroupfs (no systemd), rlimits no higher than root may set.
PODMAN_GLOBAL_FLAGS: Final = ("--runtime", "runc", "--cgroup-manager", "cgroupfs")
PODMAN_ULIMITS: Final = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024")
_NEEDS_ULIMITS: Final = frozenset({"build", "run", "create"})

DEBIAN_MIRRORS: Final = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
# What the official debian:bookworm-slim leaves out: docs, man pages,
# locales; and apt's downloaded packages are deleted after each install.
# Also glibc's iconv converters (8 MB): Python, Java and Redis convert
# character sets themselves, so nothing in ticklake's images calls iconv.
_DPKG_EXCLUDES: Final = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/lib/x86_64-linux-gnu/gconv/*.so",
)
_APT_CLEAN: Final = (
    'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };'
)

# Files under a build context that never reach an image (.dockerignore).
_IGNORED_PARTS: Final = frozenset(
    {"__pycache__", ".venv", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".git"}
)


class ImageError(RuntimeError):
    """A build prerequisite is missing or podman failed; the message says which."""


@dataclass(frozen=True)
class BuiltImage:
    """One image in podman's storage."""

    name: str  #: one of NAMES
    ref: str  #: e.g. localhost/ticklake-query-api:0123456789ab
    image_id: str  #: podman's image id (sha256 hex of its config)
    size_bytes: int  #: uncompressed size, base layers included (as `podman images`)
    seconds: float  #: wall time of this call's build (or cache check)
    cached: bool  #: True: an image with the same inputs existed, nothing was built

    @property
    def repository(self) -> str:
        return self.ref.rsplit(":", 1)[0]

    @property
    def tag(self) -> str:
        return self.ref.rsplit(":", 1)[1]


# --------------------------------------------------------------------- podman


def podman_binary() -> str:
    found = shutil.which("podman")
    if found is None:
        raise ImageError(
            "podman is needed to build and run ticklake's images: apt-get install podman "
            "runc (or run tools/bootstrap.sh --test)"
        )
    return found


def podman_command(*args: str) -> list[str]:
    """argv of ``podman <args>`` with this machine's runtime flags."""
    if not args:
        raise ValueError("podman_command needs a subcommand")
    subcommand, *rest = args
    ulimits = PODMAN_ULIMITS if subcommand in _NEEDS_ULIMITS else ()
    return [podman_binary(), *PODMAN_GLOBAL_FLAGS, subcommand, *ulimits, *rest]


def podman(
    *args: str,
    check: bool = True,
    capture: bool = True,
    timeout: float | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run podman; with ``check``, a failure raises ImageError with its output."""
    argv = podman_command(*args)
    result = subprocess.run(argv, capture_output=capture, text=True, timeout=timeout, input=input)
    if check and result.returncode != 0:
        output = ((result.stdout or "") + (result.stderr or ""))[-4000:]
        raise ImageError(f"podman {' '.join(args[:3])} ... failed ({result.returncode}):\n{output}")
    return result


def inspect(ref: str) -> dict[str, object] | None:
    """podman's description of an image, or None when it is not stored."""
    result = podman("image", "inspect", ref, check=False)
    if result.returncode != 0:
        return None
    described: list[dict[str, object]] = json.loads(result.stdout)
    return described[0] if described else None


def _labels(described: dict[str, object]) -> dict[str, str]:
    labels = described.get("Labels") or {}
    return dict(labels) if isinstance(labels, dict) else {}


def _image_id(described: dict[str, object]) -> str:
    return str(described["Id"])


def _size(described: dict[str, object]) -> int:
    size = described.get("Size", 0)
    return int(size) if isinstance(size, int | float | str) else 0


# ---------------------------------------------------------- index settings


@dataclass(frozen=True)
class IndexSettings:
    """How this host's pip and uv reach the package index, for the build.

    Given to the build as secrets (mounted for one RUN, never in a layer):
    the CA bundle (for a TLS-intercepting proxy) and pip.conf/uv.toml with
    the index URLs the host uses, if any.
    """

    ca_bundle: Path | None
    index_url: str | None
    extra_index_urls: tuple[str, ...]
    trusted_hosts: tuple[str, ...]


def _pip_config() -> dict[str, str]:
    """``pip config list`` of this host as {"global.index-url": value}."""
    for python in ("python3", "python"):
        exe = shutil.which(python)
        if exe is None:
            continue
        result = subprocess.run(
            [exe, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
        )
        if result.returncode == 0:
            found = {}
            for line in result.stdout.splitlines():
                key, _, value = line.partition("=")
                found[key.strip()] = value.strip().strip("'\"")
            return found
    return {}


def host_index_settings(environ: dict[str, str] | None = None) -> IndexSettings:
    """Read pip's and uv's settings from the environment and pip's config."""
    env = dict(os.environ if environ is None else environ)
    pip_conf = _pip_config()

    def conf(key: str) -> str | None:
        for scope in (":env:", "global", "install"):
            if f"{scope}.{key}" in pip_conf:
                return pip_conf[f"{scope}.{key}"]
        return None

    ca_candidates = [
        env.get("SSL_CERT_FILE"),
        env.get("PIP_CERT"),
        env.get("REQUESTS_CA_BUNDLE"),
        conf("cert"),
        "/etc/ssl/certs/ca-certificates.crt",
    ]
    ca_bundle = next((Path(c) for c in ca_candidates if c and Path(c).is_file()), None)
    index_url = (
        env.get("UV_DEFAULT_INDEX")
        or env.get("UV_INDEX_URL")
        or env.get("PIP_INDEX_URL")
        or conf("index-url")
    )
    extra = env.get("UV_INDEX") or env.get("UV_EXTRA_INDEX_URL") or env.get("PIP_EXTRA_INDEX_URL")
    extra = extra or conf("extra-index-url") or ""
    trusted = env.get("PIP_TRUSTED_HOST") or conf("trusted-host") or ""
    return IndexSettings(
        ca_bundle=ca_bundle,
        index_url=index_url or None,
        extra_index_urls=tuple(extra.split()),
        trusted_hosts=tuple(trusted.split()),
    )


def pip_conf_text(settings: IndexSettings) -> str:
    parser = configparser.ConfigParser()
    parser["global"] = {}
    if settings.ca_bundle:
        # The bundle is mounted at the system path in the build (see Dockerfile).
        parser["global"]["cert"] = "/etc/ssl/certs/ca-certificates.crt"
    if settings.index_url:
        parser["global"]["index-url"] = settings.index_url
    if settings.extra_index_urls:
        parser["global"]["extra-index-url"] = " ".join(settings.extra_index_urls)
    if settings.trusted_hosts:
        parser["global"]["trusted-host"] = " ".join(settings.trusted_hosts)
    lines = ["[global]"] + [f"{k} = {v}" for k, v in parser["global"].items()]
    return "\n".join(lines) + "\n"


def uv_toml_text(settings: IndexSettings) -> str:
    # The system store (with the mounted bundle), not uv's built-in roots.
    lines = ["native-tls = true"]
    if settings.index_url:
        lines.append(f"index-url = {json.dumps(settings.index_url)}")
    if settings.extra_index_urls:
        lines.append(f"extra-index-url = {json.dumps(list(settings.extra_index_urls))}")
    return "\n".join(lines) + "\n"


def secret_args(settings: IndexSettings, folder: Path) -> list[str]:
    """``--secret`` arguments of a build, their files written into ``folder``."""
    (folder / "pip.conf").write_text(pip_conf_text(settings))
    (folder / "uv.toml").write_text(uv_toml_text(settings))
    args = [
        "--secret", f"id=pip.conf,src={folder / 'pip.conf'}",
        "--secret", f"id=uv.toml,src={folder / 'uv.toml'}",
    ]  # fmt: skip
    if settings.ca_bundle:
        args += ["--secret", f"id=ca-bundle,src={settings.ca_bundle}"]
    return args


# ---------------------------------------------------------- input digests


@dataclass(frozen=True)
class Stage:
    base: str
    sources: tuple[str, ...]  # COPY sources from the build context
    stages: tuple[str, ...]  # COPY --from=<stage>


def dockerfile_stages(text: str) -> dict[str, Stage]:
    """Each named stage of a Dockerfile: its base and what it copies."""
    joined = re.sub(r"\\\n", " ", text)
    stages: dict[str, Stage] = {}
    name: str | None = None
    base = ""
    sources: list[str] = []
    froms: list[str] = []

    def close() -> None:
        if name is not None:
            stages[name] = Stage(base, tuple(sources), tuple(froms))

    for line in joined.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        keyword = words[0].upper()
        if keyword == "FROM":
            close()
            base = words[1]
            name = words[3] if len(words) > 3 and words[2].upper() == "AS" else f"#{len(stages)}"
            sources, froms = [], []
        elif keyword == "COPY":
            args = [w for w in words[1:] if not w.startswith("--")]
            from_flags = [w.split("=", 1)[1] for w in words[1:] if w.startswith("--from=")]
            if from_flags:
                froms.extend(from_flags)
            else:
                sources.extend(args[:-1])
    close()
    return stages


def target_inputs(stages: dict[str, Stage], target: str) -> tuple[set[str], set[str]]:
    """(context paths, external base images) the stage ``target`` depends on."""
    sources: set[str] = set()
    bases: set[str] = set()
    todo, seen = [target], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name not in stages:
            raise ImageError(f"Dockerfile has no stage {name!r}")
        stage = stages[name]
        sources.update(stage.sources)
        todo.extend(stage.stages)
        if stage.base in stages:
            todo.append(stage.base)
        elif stage.base != "scratch":  # the empty image, not one to look up
            bases.add(stage.base)
    return sources, bases


def _context_files(context: Path, sources: Iterable[str]) -> Iterator[Path]:
    for source in sorted(set(sources)):
        path = context / source
        if not path.exists():
            raise ImageError(f"{source} (copied by the Dockerfile) is missing under {context}")
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        for file in candidates:
            rel = file.relative_to(context).parts
            if file.is_file() and not _IGNORED_PARTS.intersection(rel) and file.suffix != ".pyc":
                if not any(part.endswith(".egg-info") for part in rel):
                    yield file


def inputs_digest(context: Path, files: Iterable[Path], extra: Sequence[str]) -> str:
    """sha256 over the files (path, mode, content) and ``extra`` strings."""
    digest = hashlib.sha256(f"ticklake-images/{DIGEST_VERSION}\n".encode())
    for item in extra:
        digest.update(f"{item}\n".encode())
    for file in sorted(set(files)):
        executable = os.access(file, os.X_OK)
        digest.update(f"{file.relative_to(context)}:{int(executable)}:".encode())
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


# ------------------------------------------------------------------ bases


def mmdebstrap_argv(output: Path) -> list[str]:
    """The recipe of the debian:bookworm-slim stand-in."""
    tool = shutil.which("mmdebstrap")
    if tool is None:
        raise ImageError(
            "mmdebstrap is needed to make the local Debian base image (nothing can be "
            "pulled here): apt-get install mmdebstrap (or run tools/bootstrap.sh --test)"
        )
    return [
        tool, "--quiet", "--variant=minbase", "--include=ca-certificates,passwd",
        "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
        *(f"--dpkgopt={opt}" for opt in _DPKG_EXCLUDES),
        f"--aptopt={_APT_CLEAN}",
        "bookworm", str(output), *DEBIAN_MIRRORS,
    ]  # fmt: skip


def _standin_current(ref: str, recipe: str) -> bool | None:
    """True: ours and current; False: ours but stale, or absent; None: not ours."""
    described = inspect(ref)
    if described is None:
        return False
    label = _labels(described).get(STANDIN_LABEL)
    if label is None:
        return None
    return label == recipe


def ensure_debian_base() -> str:
    """``debian:bookworm-slim`` in podman's storage; made with mmdebstrap if absent."""
    recipe = hashlib.sha256("\n".join(mmdebstrap_argv(Path("OUT"))[1:]).encode()).hexdigest()[:16]
    if _standin_current(DEBIAN_BASE, recipe) is not False:
        return DEBIAN_BASE
    log.info("making %s from Debian packages with mmdebstrap", DEBIAN_BASE)
    with tempfile.TemporaryDirectory(prefix="ticklake-debian-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        result = subprocess.run(mmdebstrap_argv(rootfs), capture_output=True, text=True)
        if result.returncode != 0:
            raise ImageError(f"mmdebstrap failed:\n{result.stderr[-4000:]}")
        podman(
            "import",
            "--change", 'CMD ["bash"]',
            "--change", "ENV LANG=C.UTF-8",
            "--change", f"LABEL {STANDIN_LABEL}={recipe}",
            str(rootfs), DEBIAN_BASE,
        )  # fmt: skip
    return DEBIAN_BASE


def ensure_python_base() -> str:
    """``python:3.11-slim`` in podman's storage; made from Debian's Python if absent."""
    if _standin_current(PYTHON_BASE, "") is None:
        return PYTHON_BASE  # a real one (pulled or loaded): never replaced
    context = paths.repo_root() / "tools" / "images" / "python"
    debian = inspect(ensure_debian_base())
    assert debian is not None
    recipe = inputs_digest(context, _context_files(context, ["."]), [_image_id(debian)])[:16]
    if _standin_current(PYTHON_BASE, recipe):
        return PYTHON_BASE
    log.info("making %s from Debian 12's python3", PYTHON_BASE)
    _podman_build(context, context / "Dockerfile", PYTHON_BASE, {STANDIN_LABEL: recipe})
    return PYTHON_BASE


# ------------------------------------------------------------------ builds


@dataclass(frozen=True)
class _Plan:
    """How one image is built: context, Dockerfile, target, ref, inputs."""

    name: str
    context: Path
    dockerfile: Path
    target: str | None
    ref: str
    digest: str


def _kafka_context() -> Path:
    """Staging folder of the Kafka image: jars, generated config, entrypoint."""
    source = paths.repo_root() / "tools" / "images" / "kafka"
    staging = paths.cache_dir() / "images" / "context" / "kafka"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "libs").mkdir(parents=True)
    libs: Path = kafka.kafka_libs()
    for jar in sorted(libs.glob("*.jar")):
        target = staging / "libs" / jar.name
        try:
            os.link(jar, target)
        except OSError:
            shutil.copy2(jar, target)
    shutil.copy2(source / "Dockerfile", staging / "Dockerfile")
    shutil.copy2(source / "kafka-entrypoint.sh", staging / "kafka-entrypoint.sh")
    settings = kafka.server_properties(
        listeners="PLAINTEXT://0.0.0.0:9092,CONTROLLER://127.0.0.1:9093",
        controller_bootstrap="127.0.0.1:9093",
        log_dirs="/var/lib/kafka/data",
    )
    (staging / "server.properties").write_text(kafka.properties_text(settings))
    (staging / "jvm.args").write_text("\n".join(kafka.jvm_args()) + "\n")
    return staging


def _plan(name: str, tag: str | None) -> _Plan:
    if name in SERVICE_NAMES:
        root = paths.repo_root()
        dockerfile = root / "Dockerfile"
        text = dockerfile.read_text()
        sources, bases = target_inputs(dockerfile_stages(text), name)
        base_ids = []
        for base in sorted(bases):
            if base.startswith("python:") or base == PYTHON_BASE:
                ensure_python_base()
            described = inspect(base)
            if described is None:
                raise ImageError(f"base image {base} is not in podman's storage")
            base_ids.append(_image_id(described))
        files = [*_context_files(root, sources), dockerfile]
        digest = inputs_digest(root, files, [name, *base_ids])
        ref = f"{REPOSITORY_PREFIX}{name}:{tag or digest[:12]}"
        return _Plan(name, root, dockerfile, name, ref, digest)
    if name in ("kafka", "redis"):
        debian = inspect(ensure_debian_base())
        assert debian is not None
        if name == "kafka":
            context, ref_tag = _kafka_context(), kafka.KAFKA_VERSION
        else:
            context, ref_tag = paths.repo_root() / "tools" / "images" / "redis", REDIS_TAG
        digest = inputs_digest(context, _context_files(context, ["."]), [name, _image_id(debian)])
        return _Plan(name, context, context / "Dockerfile", None,
                     f"{REPOSITORY_PREFIX}{name}:{ref_tag}", digest)  # fmt: skip
    raise ImageError(f"unknown image {name!r}; known: {', '.join(NAMES)}")


def _podman_build(
    context: Path,
    dockerfile: Path,
    ref: str,
    labels: dict[str, str],
    target: str | None = None,
    *,
    fresh: bool = False,
    build_args: Mapping[str, str] | None = None,
) -> None:
    with tempfile.TemporaryDirectory(prefix="ticklake-build-") as tmp:
        args = [
            "build",
            # Build steps use the host's network (reaching the package index
            # as the host does); no bridge, no firewall rule is made.
            "--network", "host",
            "--pull=never",
            # Docker's format keeps HEALTHCHECK (OCI has no such field).
            "--format", "docker",
            "--layers",
            "-f", str(dockerfile),
            "-t", ref,
            *(a for k, v in labels.items() for a in ("--label", f"{k}={v}")),
            *secret_args(host_index_settings(), Path(tmp)),
        ]  # fmt: skip
        if target:
            args += ["--target", target]
        for key, value in (build_args or {}).items():
            args += ["--build-arg", f"{key}={value}"]
        if fresh:
            args.append("--no-cache")
        podman(*args, str(context))


def podman_build(
    context: Path,
    dockerfile: Path,
    ref: str,
    *,
    target: str | None = None,
    build_args: Mapping[str, str] | None = None,
) -> str:
    """Build one Dockerfile (target) as ``ref`` the way :func:`build` does; return its image ID.

    For builds described elsewhere (skaffold.yaml's artifacts): the same
    podman flags and package-index secrets, the Python base made if absent,
    no input label and no skipping (podman's layer cache still applies).
    """
    ensure_python_base()
    with _build_lock():
        _podman_build(context, dockerfile, ref, {}, target, build_args=build_args)
    described = inspect(ref)
    if described is None:
        raise ImageError(f"{ref} was built but podman does not list it")
    return _image_id(described)


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    lock_path = paths.cache_dir() / "images" / "build.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _find_by_digest(name: str, digest: str) -> str | None:
    """Id of a stored image ``name`` built from inputs ``digest``, if any."""
    result = podman(
        "images", "--noheading", "--no-trunc", "--format", "{{.ID}}",
        "--filter", f"label={INPUTS_LABEL}={digest}",
        "--filter", f"reference={REPOSITORY_PREFIX}{name}",
    )  # fmt: skip
    ids = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    return ids[0].removeprefix("sha256:") if ids else None


def prune_build_stages() -> None:
    """Delete untagged images (build stages) left by builds, to save disk.

    Best effort: podman refuses the whole prune when one untagged image is in
    use by a container (another job's build or test on this machine, seen in
    practice); the build itself succeeded, so that is logged, not raised.
    """
    result = podman("image", "prune", "--force", check=False)
    if result.returncode != 0:
        log.warning("podman image prune failed (left for the next build): %s", result.stderr[-500:])


def remove_stale(name: str, digest: str) -> None:
    """Delete earlier builds of image ``name`` (other inputs), to save disk."""
    result = podman(
        "images", "--noheading", "--no-trunc", "--format", "{{.ID}} {{.Labels}}",
        "--filter", f"reference={REPOSITORY_PREFIX}{name}",
    )  # fmt: skip
    for line in result.stdout.splitlines():
        image_id, _, labels = line.partition(" ")
        if image_id and f"{INPUTS_LABEL}:{digest}" not in labels:
            podman("rmi", "--force", image_id, check=False)


def build(
    names: Iterable[str] | None = None, *, tag: str | None = None, fresh: bool = False
) -> list[BuiltImage]:
    """Build the named images (default: all), skipping those already current.

    ``fresh``: rebuild from scratch, no layer reused (for measuring).
    """
    wanted = list(NAMES if names is None else names)
    unknown = [n for n in wanted if n not in NAMES]
    if unknown:
        raise ImageError(f"unknown image(s) {', '.join(unknown)}; known: {', '.join(NAMES)}")
    built: list[BuiltImage] = []
    with _build_lock():
        for name in wanted:
            started = time.monotonic()
            plan = _plan(name, tag)
            existing = None if fresh else _find_by_digest(name, plan.digest)
            if existing is not None:
                podman("tag", existing, plan.ref)
                cached = True
            else:
                log.info("building %s", plan.ref)
                _podman_build(plan.context, plan.dockerfile, plan.ref,
                              {INPUTS_LABEL: plan.digest}, plan.target, fresh=fresh)  # fmt: skip
                remove_stale(name, plan.digest)
                cached = False
            described = inspect(plan.ref)
            if described is None:
                raise ImageError(f"{plan.ref} was built but podman does not list it")
            built.append(
                BuiltImage(
                    name=name, ref=plan.ref, image_id=_image_id(described),
                    size_bytes=_size(described), seconds=time.monotonic() - started,
                    cached=cached,
                )
            )  # fmt: skip
        if not all(b.cached for b in built):
            prune_build_stages()
    return built


def list_images() -> list[tuple[str, int, str]]:
    """(ref, size in bytes, created) of every ticklake image in podman's storage."""
    result = podman("images", "--format", "json", "--filter", f"label={INPUTS_LABEL}")
    rows = []
    for image in json.loads(result.stdout or "[]"):
        for name in image.get("Names") or []:
            if name.startswith(REPOSITORY_PREFIX):
                rows.append((name, int(image.get("Size", 0)), str(image.get("CreatedAt", ""))))
    return sorted(rows)


def save_archive(refs: Iterable[str], path: Path) -> Path:
    """Write the images into one docker-archive tar (for ctr or kind load)."""
    refs = list(refs)
    if not refs:
        raise ValueError("save_archive needs at least one image")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    podman("save", "--format", "docker-archive", "--multi-image-archive", "-o", str(path), *refs)
    return path


def chart_values(images: Iterable[BuiltImage]) -> dict[str, object]:
    """Helm values for charts/ticklake that use these local images, never pulled."""
    keys = {"producer": "producer", "ingest": "ingest", "query-api": "queryApi",
            "operator": "operator"}  # fmt: skip
    values: dict[str, object] = {"image": {"registry": "localhost", "pullPolicy": "Never"}}
    for image in images:
        if image.name in keys:
            values[keys[image.name]] = {"image": {"tag": image.tag, "pullPolicy": "Never"}}
        elif image.name == "redis":
            values["redis"] = {
                "image": {"repository": image.repository, "tag": image.tag, "pullPolicy": "Never"}
            }
    return values
