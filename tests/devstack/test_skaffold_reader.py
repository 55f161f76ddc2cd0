"""The skaffold.yaml reader: profiles, JSON patches, taggers, helm arguments, port-forwards.

Pure parts on small documents, plus our real skaffold.yaml read the way
``skaffold dev`` and ``skaffold run -p ci`` read it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ticklake.devstack import skaffold
from ticklake.devstack.skaffold import Artifact, SkaffoldConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "skaffold.yaml").read_text())


# ------------------------------------------------------------ JSON patches


def test_json_patch_add_remove_replace() -> None:
    doc = {"a": {"b": [1, 2]}, "c": 1}
    out = skaffold.json_patch(
        doc,
        [
            {"op": "add", "path": "/a/b/1", "value": 9},
            {"op": "add", "path": "/a/b/-", "value": 7},
            {"op": "add", "path": "/a/new~1key", "value": "x"},
            {"op": "remove", "path": "/c"},
            {"path": "/a/b/0", "value": 0},  # no op: skaffold's default is replace
        ],
    )
    assert out == {"a": {"b": [0, 9, 2, 7], "new/key": "x"}}
    assert doc == {"a": {"b": [1, 2]}, "c": 1}  # the input is left alone


@pytest.mark.parametrize(
    ("patch", "complaint"),
    [
        ({"op": "remove", "path": "/missing"}, "nothing there"),
        ({"op": "replace", "path": "/a/zz/x", "value": 1}, "no 'zz'"),
        ({"op": "replace", "path": "/a/b/5", "value": 1}, "out of range"),
        ({"op": "move", "path": "/a", "from": "/c"}, "not read"),
        ({"op": "add", "path": "a", "value": 1}, "must start with '/'"),
    ],
)
def test_json_patch_refuses_what_it_cannot_apply(patch: dict[str, Any], complaint: str) -> None:
    with pytest.raises(SkaffoldConfigError, match=complaint):
        skaffold.json_patch({"a": {"b": [1]}, "c": 1}, [patch])


# ------------------------------------------------------------- profiles


def test_dev_profile_is_activated_by_the_dev_command(document: dict[str, Any]) -> None:
    assert skaffold.activated_profiles(document, "dev") == ["dev"]
    assert skaffold.activated_profiles(document, "run") == []


def test_dev_profile_sets_debug_logs_and_pull_policy(document: dict[str, Any]) -> None:
    base = skaffold.apply_profiles(document, [])
    dev = skaffold.apply_profiles(document, ["dev"])
    (release,) = dev.releases
    assert release.set_values["logLevel"] == "DEBUG"
    assert release.set_values["image.pullPolicy"] == "IfNotPresent"
    assert "logLevel" not in base.releases[0].set_values
    assert dev.tag_policy == ("inputDigest", {})
    assert [p.local_port for p in dev.port_forwards] == [18080, 13000]


def test_ci_profile_overlays_then_patches(document: dict[str, Any]) -> None:
    ci = skaffold.apply_profiles(document, ["ci"])
    # tagPolicy and local are replaced whole (one-of groups), not merged.
    assert ci.document["build"]["tagPolicy"] == {"gitCommit": {"variant": "CommitSha"}}
    assert ci.document["build"]["local"] == {"push": False, "concurrency": 1}
    assert ci.document["build"]["artifacts"] == document["build"]["artifacts"]
    (release,) = ci.releases
    assert release.values_files == ("charts/ticklake/ci/monitoring-off-values.yaml",)
    assert ci.port_forwards == []
    assert "profiles" not in ci.document


def test_unknown_profile_and_activation_kinds_are_refused(document: dict[str, Any]) -> None:
    with pytest.raises(SkaffoldConfigError, match="no profile 'prod'"):
        skaffold.apply_profiles(document, ["prod"])
    odd = {**document, "profiles": [{"name": "x", "activation": [{"env": "A=1"}]}]}
    with pytest.raises(SkaffoldConfigError, match="only 'command' activations"):
        skaffold.activated_profiles(odd, "dev")
    with pytest.raises(SkaffoldConfigError, match="apiVersion"):
        skaffold.apply_profiles({**document, "apiVersion": "skaffold/v2beta29"}, [])


def test_unread_builders_and_deployers_are_refused(document: dict[str, Any]) -> None:
    jib = {"image": "x", "context": ".", "jib": {}}
    cfg = skaffold.apply_profiles({**document, "build": {"artifacts": [jib]}}, [])
    with pytest.raises(SkaffoldConfigError, match="only docker artifacts"):
        _ = cfg.artifacts
    cfg = skaffold.apply_profiles({**document, "deploy": {"kubectl": {}}}, [])
    with pytest.raises(SkaffoldConfigError, match="only the helm deployer"):
        _ = cfg.releases


# ------------------------------------------------------------ artifacts


def test_artifacts_of_our_file(document: dict[str, Any]) -> None:
    cfg = skaffold.apply_profiles(document, [])
    by_image = {a.image: a for a in cfg.artifacts}
    assert by_image["ticklake-query-api"].dockerfile == "Dockerfile"
    assert by_image["ticklake-query-api"].target == "query-api"
    assert by_image["ticklake-query-api"].template_name == "ticklake_query_api"
    assert all((ROOT / a.context / a.dockerfile).is_file() for a in cfg.artifacts)
    assert cfg.push is False


def test_dockerfile_sources_skip_stage_copies() -> None:
    text = (
        "FROM x AS build\n"
        "# comment\n"
        "COPY pyproject.toml uv.lock ./\n"
        'ADD ["a b.txt", "/dst/"]\n'
        "COPY --chown=1:1 libs/core \\\n"
        "  # a comment inside a continuation\n"
        "  libs/core\n"
        "COPY --from=build /opt/venv /opt/venv\n"
        "RUN echo COPY nothing\n"
    )
    expected = ["pyproject.toml", "uv.lock", "a b.txt", "libs/core"]
    assert skaffold.dockerfile_sources(text) == expected


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        ("services/ingest/src/x.py", False),
        ("services/ingest/src/__pycache__/x.cpython-311.pyc", True),
        (".venv/lib/a.py", True),
        ("libs/core/.venv/bin/python", True),
        ("tests/test_x.py", True),
        ("libs/core/tests_data.txt", False),
        ("keep/important.pyc", False),  # re-included by a "!" line
    ],
)
def test_dockerignore_filter(path: str, ignored: bool) -> None:
    patterns = ["# c", "**/.venv", "**/__pycache__", "**/*.pyc", "tests", "!keep/*.pyc"]
    assert skaffold.dockerignore_filter(patterns)(path) is ignored


# -------------------------------------------------------------- taggers


def _context(tmp_path: Path) -> Path:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text("print('v1')\n")
    (tmp_path / "app" / "__pycache__").mkdir()
    (tmp_path / "app" / "__pycache__" / "main.pyc").write_bytes(b"\0")
    (tmp_path / "other.txt").write_text("not copied\n")
    (tmp_path / ".dockerignore").write_text("**/__pycache__\n")
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY app /app\n")
    return tmp_path


def test_input_digest_follows_skaffolds_formula(tmp_path: Path) -> None:
    root = _context(tmp_path)
    artifact = Artifact(image="demo", context=".", dockerfile="Dockerfile")
    deps = skaffold.source_dependencies(artifact, root)
    assert [p.relative_to(root).as_posix() for p in deps] == ["Dockerfile", "app/main.py"]
    hashes = [
        hashlib.md5(b"Dockerfile" + (root / "Dockerfile").read_bytes()).hexdigest(),
        hashlib.md5(b"app/main.py" + (root / "app/main.py").read_bytes()).hexdigest(),
    ]
    expected = hashlib.sha256((json.dumps(hashes).replace(", ", ",") + "\n").encode()).hexdigest()
    assert skaffold.input_digest(artifact, root) == expected


def test_input_digest_changes_with_inputs_only(tmp_path: Path) -> None:
    root = _context(tmp_path)
    artifact = Artifact(image="demo", context=".", dockerfile="Dockerfile")
    first = skaffold.input_digest(artifact, root)
    (root / "other.txt").write_text("changed\n")
    (root / "app" / "__pycache__" / "main.pyc").write_bytes(b"\1")
    assert skaffold.input_digest(artifact, root) == first
    (root / "app" / "main.py").write_text("print('v2')\n")
    assert skaffold.input_digest(artifact, root) != first


def test_our_artifacts_digest_only_their_own_service(document: dict[str, Any]) -> None:
    cfg = skaffold.apply_profiles(document, [])
    by_image = {a.image: a for a in cfg.artifacts}
    deps = {
        image: {p.relative_to(ROOT).as_posix() for p in skaffold.source_dependencies(a, ROOT)}
        for image, a in by_image.items()
    }
    ingest_source = "services/ingest/src/ticklake/ingest/consumer.py"
    assert ingest_source in deps["ticklake-ingest"]
    assert ingest_source not in deps["ticklake-query-api"]
    assert "uv.lock" in deps["ticklake-query-api"]
    assert not any(d.startswith(("tests/", "docs/")) or "__pycache__" in d
                   for d in set().union(*deps.values()))  # fmt: skip


def test_git_commit_tag_marks_dirty_trees(tmp_path: Path) -> None:
    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=tmp_path, check=True, capture_output=True,
                              text=True).stdout.strip()  # fmt: skip

    git("init", "-q")
    (tmp_path / "f").write_text("1")
    git("add", "f")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    artifact = Artifact(image="demo", context=".", dockerfile="Dockerfile")
    sha = git("rev-parse", "HEAD")
    assert skaffold.git_commit_tag(artifact, tmp_path, "CommitSha") == sha
    (tmp_path / "f").write_text("2")
    assert skaffold.git_commit_tag(artifact, tmp_path, "CommitSha") == f"{sha}-dirty"
    with pytest.raises(SkaffoldConfigError, match="variant 'TreeShaX'"):
        skaffold.git_commit_tag(artifact, tmp_path, "TreeShaX")


# ---------------------------------------------------------- helm release


def test_helm_args_render_image_templates(document: dict[str, Any]) -> None:
    cfg = skaffold.apply_profiles(document, ["dev"])
    ids = {a.image: f"sha256:{i:064x}" for i, a in enumerate(cfg.artifacts, start=1)}
    deployed = {a.image: skaffold.deployed_reference(a, ids[a.image]) for a in cfg.artifacts}
    values = skaffold.template_values(cfg.artifacts, deployed)
    assert values["IMAGE_REPO_ticklake_query_api"] == "ticklake-query-api"
    assert values["IMAGE_TAG_ticklake_query_api"] == f"{3:064x}"
    (release,) = cfg.releases
    args = skaffold.helm_args(release, values, extra_values_files=["cluster.yaml"])
    assert args[:4] == ["upgrade", "ticklake", "charts/ticklake", "--install"]
    assert ["--namespace", "ticklake"] == args[4:6] and "--create-namespace" in args
    assert args[-1] == "--wait"
    sets = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--set")
    assert sets["queryApi.image.repository"] == "ticklake-query-api"
    assert sets["ingest.image.tag"] == f"{2:064x}"
    assert sets["logLevel"] == "DEBUG" and sets["queryApi.service.nodePort"] == "30800"
    assert args[args.index("-f") + 1] == "cluster.yaml"


def test_templates_with_unknown_names_fail() -> None:
    with pytest.raises(SkaffoldConfigError, match="no value IMAGE_TAG_nope"):
        skaffold.render_template("{{.IMAGE_TAG_nope}}", {})
    with pytest.raises(SkaffoldConfigError, match="only"):
        skaffold.render_template("{{ default 1 .X }}", {"X": "1"})


def test_port_forward_entries(document: dict[str, Any]) -> None:
    cfg = skaffold.apply_profiles(document, [])
    query, grafana = cfg.port_forwards
    assert (query.resource_type, query.resource_name, query.namespace) == (
        "service", "ticklake-query-api", "ticklake",
    )  # fmt: skip
    assert (query.port, query.local_port) == (8000, 18080)
    assert (grafana.resource_name, grafana.namespace) == ("kube-prometheus-stack-grafana",
                                                          "monitoring")  # fmt: skip
