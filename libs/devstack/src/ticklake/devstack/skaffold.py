"""A reader of our skaffold.yaml: what skaffold would build, tag, deploy and forward.

The skaffold binary cannot be had here (no registry serves it), so the cluster
tests do with ``skaffold.yaml`` what skaffold does, and this module says what
that is. It is a reader, not a replacement: it covers the fields our file uses
(docker artifacts, the ``inputDigest`` and ``gitCommit`` tag policies, one helm
deployer, ``portForward``, profiles with field overlays and JSON patches) and
refuses anything else by name, so a new field in skaffold.yaml fails loudly
instead of being skipped. Everything here is pure except the two taggers,
which read the build context (files) and git.

Behaviour follows skaffold v2 as documented and as its source does it:

* profiles: the profile's ``build``/``deploy``/... fields are laid over the
  config first (a set field replaces the config's; ``build.tagPolicy`` and the
  build type such as ``build.local`` are one-of groups and replace whole),
  then its ``patches`` (JSON-patch ``add``/``remove``/``replace``; no ``op``
  means ``replace``) are applied to the result;
* ``inputDigest``: sha256 over the JSON list of md5(relative path + content)
  of each source dependency (the Dockerfile and the files its COPY/ADD
  instructions take from the context, minus .dockerignore), sorted by path;
* ``gitCommit``: ``git rev-list -1 HEAD`` (variant CommitSha) or ``git
  describe --tags --always`` (Tags, the default), ``-dirty`` when the context
  has uncommitted changes;
* with ``local.push: false`` skaffold gives the built image one more tag, its
  image ID without ``sha256:``, and deploys that (an immutable reference);
* helm ``setValueTemplates`` see ``IMAGE_REPO_<name>``, ``IMAGE_TAG_<name>``
  and ``IMAGE_FULLY_QUALIFIED_<name>``, where ``<name>`` is the artifact's
  image with every character that is not a letter or digit replaced by "_".
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shlex
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ticklake.devstack import images

SUPPORTED_API_PREFIX = "skaffold/v4"


class SkaffoldConfigError(ValueError):
    """skaffold.yaml (or a profile) uses something this reader does not do, or is malformed."""


# ------------------------------------------------------------------ the model


@dataclass(frozen=True)
class Artifact:
    """One image skaffold builds with its docker builder."""

    image: str
    context: str
    dockerfile: str
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None

    @property
    def template_name(self) -> str:
        """The ``<name>`` of ``IMAGE_REPO_<name>``: non-alphanumerics become "_"."""
        return re.sub(r"[^A-Za-z0-9]", "_", self.image)


@dataclass(frozen=True)
class HelmRelease:
    """One ``deploy.helm.releases`` entry."""

    name: str
    chart_path: str
    namespace: str | None
    create_namespace: bool
    values_files: tuple[str, ...]
    set_values: Mapping[str, Any]
    set_value_templates: Mapping[str, str]
    wait: bool


@dataclass(frozen=True)
class PortForward:
    """One ``portForward`` entry (``kubectl port-forward <type>/<name> <local>:<port>``)."""

    resource_type: str
    resource_name: str
    namespace: str | None
    port: int
    local_port: int
    address: str = "127.0.0.1"


@dataclass(frozen=True)
class Skaffold:
    """skaffold.yaml after the chosen profiles were applied."""

    document: Mapping[str, Any]
    profiles: tuple[str, ...]

    @property
    def artifacts(self) -> list[Artifact]:
        out = []
        for raw in self.document.get("build", {}).get("artifacts", []):
            unknown = set(raw) - {"image", "context", "docker"}
            if unknown or "docker" not in raw:
                raise SkaffoldConfigError(
                    f"artifact {raw.get('image')!r}: only docker artifacts with image, context"
                    f" and docker are read; found {sorted(unknown) or 'no docker section'}"
                )
            docker = raw["docker"]
            out.append(
                Artifact(
                    image=raw["image"],
                    context=raw.get("context", "."),
                    dockerfile=docker.get("dockerfile", "Dockerfile"),
                    build_args={k: str(v) for k, v in (docker.get("buildArgs") or {}).items()},
                    target=docker.get("target"),
                )
            )
        return out

    @property
    def tag_policy(self) -> tuple[str, Mapping[str, Any]]:
        """(policy name, its options); skaffold's default is gitCommit."""
        policy = self.document.get("build", {}).get("tagPolicy") or {"gitCommit": {}}
        if len(policy) != 1:
            raise SkaffoldConfigError(f"tagPolicy must name one tagger, got {sorted(policy)}")
        ((name, options),) = policy.items()
        if name not in ("inputDigest", "gitCommit"):
            raise SkaffoldConfigError(f"tagPolicy {name!r} is not read (inputDigest, gitCommit)")
        return name, options or {}

    @property
    def push(self) -> bool:
        local = self.document.get("build", {}).get("local")
        if local is None:
            raise SkaffoldConfigError("only build.local is read (no gcb/cluster builds)")
        return bool(local.get("push", False))

    @property
    def releases(self) -> list[HelmRelease]:
        deploy = self.document.get("deploy", {})
        if set(deploy) - {"helm", "statusCheck", "statusCheckDeadlineSeconds"}:
            raise SkaffoldConfigError(f"only the helm deployer is read, found {sorted(deploy)}")
        out = []
        for raw in deploy.get("helm", {}).get("releases", []):
            if "remoteChart" in raw or "chartPath" not in raw:
                raise SkaffoldConfigError(f"release {raw.get('name')!r}: only chartPath is read")
            out.append(
                HelmRelease(
                    name=raw["name"],
                    chart_path=raw["chartPath"],
                    namespace=raw.get("namespace"),
                    create_namespace=bool(raw.get("createNamespace", False)),
                    values_files=tuple(raw.get("valuesFiles") or ()),
                    set_values=dict(raw.get("setValues") or {}),
                    set_value_templates=dict(raw.get("setValueTemplates") or {}),
                    wait=bool(raw.get("wait", False)),
                )
            )
        return out

    @property
    def port_forwards(self) -> list[PortForward]:
        return [
            PortForward(
                resource_type=raw["resourceType"].lower(),
                resource_name=raw["resourceName"],
                namespace=raw.get("namespace"),
                port=int(raw["port"]),
                # skaffold: localPort defaults to the remote port.
                local_port=int(raw.get("localPort", raw["port"])),
                address=raw.get("address", "127.0.0.1"),
            )
            for raw in self.document.get("portForward") or []
        ]


# ----------------------------------------------------------------- profiles

# Fields of a profile that lay over the config; build and deploy merge one
# level down (their sub-fields replace whole: tagPolicy and local are one-of
# groups in skaffold's schema, artifacts and releases are lists).
_MERGED_ONE_LEVEL = ("build", "deploy", "manifests", "test")
_PROFILE_KEYS = {"name", "activation", "patches", "requiresAllActivations",
                 "build", "deploy", "portForward", "manifests", "test", "verify"}  # fmt: skip


def activated_profiles(document: Mapping[str, Any], command: str) -> list[str]:
    """Profiles whose activation matches ``command`` (dev, run, ...), as skaffold picks them.

    Only ``command`` activations are read (skaffold also knows env and
    kubeContext); a profile that uses those raises rather than guessing.
    """
    names = []
    for profile in document.get("profiles") or []:
        for activation in profile.get("activation") or []:
            if set(activation) - {"command"}:
                raise SkaffoldConfigError(
                    f"profile {profile['name']!r}: only 'command' activations are read,"
                    f" found {sorted(activation)}"
                )
            # skaffold matches the command as a regular expression.
            if re.fullmatch(activation["command"], command) or activation["command"] == command:
                names.append(profile["name"])
                break
    return names


def apply_profiles(document: Mapping[str, Any], names: Iterable[str]) -> Skaffold:
    """The config with the named profiles applied in order (overlay, then patches)."""
    names = tuple(names)
    config = {k: copy.deepcopy(v) for k, v in document.items() if k != "profiles"}
    if not str(config.get("apiVersion", "")).startswith(SUPPORTED_API_PREFIX):
        raise SkaffoldConfigError(
            f"apiVersion {config.get('apiVersion')!r}: this reader knows {SUPPORTED_API_PREFIX}*"
        )
    profiles = {p["name"]: p for p in document.get("profiles") or []}
    for name in names:
        if name not in profiles:
            raise SkaffoldConfigError(f"no profile {name!r} (have {sorted(profiles)})")
        profile = profiles[name]
        unknown = set(profile) - _PROFILE_KEYS
        if unknown:
            raise SkaffoldConfigError(f"profile {name!r}: unknown fields {sorted(unknown)}")
        config = overlay(config, profile)
        config = json_patch(config, profile.get("patches") or [])
    return Skaffold(document=config, profiles=names)


def overlay(config: Mapping[str, Any], profile: Mapping[str, Any]) -> dict[str, Any]:
    """Lay a profile's pipeline fields over the config (skaffold's overlayProfileField)."""
    out = copy.deepcopy(dict(config))
    for key, value in profile.items():
        if key in ("name", "activation", "patches", "requiresAllActivations"):
            continue
        if value in (None, {}, []):
            continue  # an empty field in a profile leaves the config's alone
        if key in _MERGED_ONE_LEVEL and isinstance(value, Mapping):
            merged = dict(out.get(key) or {})
            for sub, sub_value in value.items():
                if sub_value not in (None, {}, []):
                    merged[sub] = copy.deepcopy(sub_value)
            out[key] = merged
        else:
            out[key] = copy.deepcopy(value)
    return out


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise SkaffoldConfigError(f"patch path {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(document: Mapping[str, Any], patches: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Apply JSON-patch ``add``/``remove``/``replace`` operations (RFC 6902) to a copy."""
    out: Any = copy.deepcopy(dict(document))
    for patch in patches:
        op = patch.get("op") or "replace"  # skaffold's default
        parts = _pointer(patch["path"])
        parent: Any = out
        for part in parts[:-1]:
            try:
                parent = parent[int(part)] if isinstance(parent, list) else parent[part]
            except (KeyError, IndexError, ValueError) as e:
                raise SkaffoldConfigError(f"patch {op} {patch['path']}: no {part!r}") from e
        last = parts[-1]
        if isinstance(parent, list):
            index = len(parent) if (last == "-" and op == "add") else int(last)
            if op == "add":
                parent.insert(index, copy.deepcopy(patch["value"]))
                continue
            if not 0 <= index < len(parent):
                raise SkaffoldConfigError(f"patch {op} {patch['path']}: index out of range")
            if op == "remove":
                del parent[index]
            elif op == "replace":
                parent[index] = copy.deepcopy(patch["value"])
            else:
                raise SkaffoldConfigError(f"patch op {op!r} is not read (add, remove, replace)")
        elif isinstance(parent, dict):
            if op == "add":
                parent[last] = copy.deepcopy(patch["value"])
            elif op in ("remove", "replace"):
                if last not in parent:
                    raise SkaffoldConfigError(f"patch {op} {patch['path']}: nothing there")
                if op == "remove":
                    del parent[last]
                else:
                    parent[last] = copy.deepcopy(patch["value"])
            else:
                raise SkaffoldConfigError(f"patch op {op!r} is not read (add, remove, replace)")
        else:
            raise SkaffoldConfigError(f"patch {op} {patch['path']}: parent is not a container")
    return dict(out)


# ------------------------------------------------------------------ tagging


def dockerfile_sources(dockerfile_text: str) -> list[str]:
    """Context paths the Dockerfile's COPY/ADD take (not ``--from=`` stages), in order."""
    lines: list[str] = []
    pending = ""
    for raw in dockerfile_text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # Docker drops comment lines, also inside continuations
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    sources: list[str] = []
    for line in lines:
        instruction, _, rest = line.partition(" ")
        if instruction.upper() not in ("COPY", "ADD"):
            continue
        flags = []
        rest = rest.strip()
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            flags.append(flag)
            rest = rest.strip()
        if any(f.startswith("--from") for f in flags):
            continue  # from another stage or image, not the context
        args = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        sources.extend(args[:-1])
    return sources


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: Go's filepath.Match per segment, "**" any depth."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i:]:
            j = pattern.index("]", i)
            out.append(pattern[i : j + 1])  # Go negates with "^", as re does
            i = j + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def dockerignore_filter(patterns: Iterable[str]) -> Callable[[str], bool]:
    """A predicate ``ignored(relative_path) -> bool`` for .dockerignore lines."""
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for line in patterns:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        rules.append((negate, _ignore_regex(line.lstrip("!").strip().strip("/"))))

    def ignored(rel: str) -> bool:
        # A path is excluded if it or any parent directory matches; later
        # lines win (a "!" line re-includes).
        parts = rel.split("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        result = False
        for negate, regex in rules:
            if any(regex.match(c) for c in candidates):
                result = not negate
        return result

    return ignored


def source_dependencies(artifact: Artifact, root: Path) -> list[Path]:
    """Files that make the artifact's input digest: the Dockerfile and its COPY/ADD sources."""
    context = (root / artifact.context).resolve()
    dockerfile = (context / artifact.dockerfile).resolve()
    ignore_file = context / ".dockerignore"
    ignored = dockerignore_filter(
        ignore_file.read_text().splitlines() if ignore_file.is_file() else []
    )
    files = {dockerfile}
    text = dockerfile.read_text()
    sources = dockerfile_sources(text)
    if artifact.target:
        # Only what the target's stages copy (one Dockerfile serves four images).
        wanted, _ = images.target_inputs(images.dockerfile_stages(text), artifact.target)
        sources = [s for s in sources if s in wanted]
    for source in sources:
        pattern = source.rstrip("/")
        matches = [context] if pattern in ("", ".") else sorted(context.glob(pattern))
        for match in matches:
            walk = [match] if match.is_file() else [p for p in match.rglob("*") if p.is_file()]
            for path in walk:
                rel = path.relative_to(context).as_posix()
                if not ignored(rel):
                    files.add(path)
    return sorted(files)


def input_digest(artifact: Artifact, root: Path) -> str:
    """skaffold's inputDigest tag for the artifact (64 hex digits)."""
    context = (root / artifact.context).resolve()
    hashes = []
    for path in sorted(str(p) for p in source_dependencies(artifact, root)):
        h = hashlib.md5(usedforsecurity=False)
        h.update(Path(path).relative_to(context).as_posix().encode())
        h.update(Path(path).read_bytes())
        hashes.append(h.hexdigest())
    # Go's json.Encoder writes the list compactly and ends it with a newline.
    encoded = json.dumps(hashes, separators=(",", ":")) + "\n"
    return hashlib.sha256(encoded.encode()).hexdigest()


def git_commit_tag(artifact: Artifact, root: Path, variant: str = "Tags") -> str:
    """skaffold's gitCommit tag (variants Tags, CommitSha, AbbrevCommitSha)."""
    context = root / artifact.context
    commands = {
        "tags": ["describe", "--tags", "--always"],
        "commitsha": ["rev-list", "-1", "HEAD"],
        "abbrevcommitsha": ["rev-list", "-1", "HEAD", "--abbrev-commit"],
    }
    try:
        args = commands[variant.lower()]
    except KeyError as e:
        raise SkaffoldConfigError(f"gitCommit variant {variant!r} is not read") from e

    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=context, check=True, capture_output=True,
                              text=True).stdout.strip()  # fmt: skip

    ref = re.sub(r"[^a-zA-Z0-9._-]", "_", git(*args))
    return f"{ref}-dirty" if git("status", ".", "--porcelain") else ref


def tag_for(config: Skaffold, artifact: Artifact, root: Path) -> str:
    """The tag skaffold's tagPolicy gives the artifact (before the image-ID tag)."""
    name, options = config.tag_policy
    if name == "inputDigest":
        return input_digest(artifact, root)
    return git_commit_tag(artifact, root, options.get("variant", "Tags"))


def deployed_reference(artifact: Artifact, image_id: str) -> str:
    """What skaffold puts in the manifests for a local, unpushed build: ``<image>:<image ID>``."""
    return f"{artifact.image}:{image_id.removeprefix('sha256:')}"


# -------------------------------------------------------------- helm release


def template_values(artifacts: Sequence[Artifact], deployed: Mapping[str, str]) -> dict[str, str]:
    """``IMAGE_REPO_*``/``IMAGE_TAG_*``/``IMAGE_FULLY_QUALIFIED_*`` for each built artifact.

    ``deployed`` maps an artifact's image to the reference skaffold deploys.
    """
    values = {}
    for a in artifacts:
        reference = deployed[a.image]
        repo, _, tag = reference.rpartition(":")
        if "/" in tag:  # a registry port, no tag
            repo, tag = reference, "latest"
        values[f"IMAGE_REPO_{a.template_name}"] = repo
        values[f"IMAGE_TAG_{a.template_name}"] = tag
        values[f"IMAGE_FULLY_QUALIFIED_{a.template_name}"] = reference
    return values


def render_template(template: str, values: Mapping[str, str]) -> str:
    """Render a ``{{.NAME}}`` template as skaffold's Go templates do for plain fields."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise SkaffoldConfigError(f"template {template!r}: no value {name}")
        return values[name]

    rendered = re.sub(r"\{\{\s*\.([A-Za-z0-9_]+)\s*\}\}", one, template)
    if "{{" in rendered:
        raise SkaffoldConfigError(f"template {template!r}: only {{{{.NAME}}}} is read")
    return rendered


def _set_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def helm_args(
    release: HelmRelease, values: Mapping[str, str], extra_values_files: Sequence[str] = ()
) -> list[str]:
    """``helm upgrade --install`` arguments skaffold's helm deployer passes for the release.

    ``extra_values_files`` come after the release's own (for a test's
    cluster-only overrides, which therefore win).
    """
    args = ["upgrade", release.name, release.chart_path, "--install"]
    if release.namespace:
        args += ["--namespace", release.namespace]
    if release.create_namespace:
        args.append("--create-namespace")
    for f in (*release.values_files, *extra_values_files):
        args += ["-f", f]
    for key, value in sorted(release.set_values.items()):
        args += ["--set", f"{key}={_set_value(value)}"]
    for key, template in sorted(release.set_value_templates.items()):
        args += ["--set", f"{key}={render_template(template, values)}"]
    if release.wait:
        args.append("--wait")
    return args
