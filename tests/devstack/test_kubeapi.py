"""The envtest-style API server launcher: it serves, enforces RBAC, and stops."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ticklake.devstack import kubeapi

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server() -> kubeapi.KubeAPIServer:
    kubeapi.ensure_binaries(ROOT / "tools" / "k8s" / "build.sh")
    with kubeapi.KubeAPIServer() as s:
        yield s


def _get(s: kubeapi.KubeAPIServer, path: str, ctx: ssl.SSLContext) -> dict:
    with urllib.request.urlopen(f"{s.url}{path}", context=ctx, timeout=10) as r:
        return json.load(r)


def test_serves_the_built_version_on_loopback(server: kubeapi.KubeAPIServer) -> None:
    assert server.url.startswith("https://127.0.0.1:")
    version = _get(server, "/version", server.ssl_context())
    built = (kubeapi.cache_bin_dir() / "kube-apiserver.version").read_text().strip()
    assert version["gitVersion"] == built
    assert version["major"] == "1"


def test_admin_kubeconfig_works(server: kubeapi.KubeAPIServer) -> None:
    text = server.kubeconfig.read_text()
    assert server.url in text
    namespaces = _get(server, "/api/v1/namespaces", server.ssl_context())
    assert {"default", "kube-system"} <= {n["metadata"]["name"] for n in namespaces["items"]}


def test_rbac_denies_a_user_without_roles(server: kubeapi.KubeAPIServer) -> None:
    server.user_kubeconfig("nobody")
    d = server.workdir / "pki"
    ctx = ssl.create_default_context(cafile=str(server.ca_file))
    ctx.load_cert_chain(str(d / "user-nobody.crt"), str(d / "user-nobody.key"))
    with pytest.raises(urllib.error.HTTPError) as e:
        _get(server, "/api/v1/namespaces", ctx)
    assert e.value.code == 403


def test_untrusted_client_is_rejected(server: kubeapi.KubeAPIServer) -> None:
    ctx = ssl.create_default_context(cafile=str(server.ca_file))
    with pytest.raises(urllib.error.HTTPError) as e:
        _get(server, "/api/v1/namespaces", ctx)
    assert e.value.code in (401, 403)


def test_stop_ends_both_processes() -> None:
    s = kubeapi.KubeAPIServer().start()
    procs = [s._apiserver, s._etcd]
    workdir = s.workdir
    s.stop()
    assert all(p is not None and p.poll() is not None for p in procs)
    assert not workdir.exists()
    s.stop()  # idempotent


def test_workloads_mode_runs_a_ready_fake_node_and_stops_everything() -> None:
    kubeapi.ensure_binaries(ROOT / "tools" / "k8s" / "build.sh", workloads=True)
    s = kubeapi.KubeAPIServer(workloads=True, fake_nodes=2).start()
    try:
        nodes = _get(s, "/api/v1/nodes", s.ssl_context())["items"]
        assert sorted(n["metadata"]["name"] for n in nodes) == ["kwok-node-0", "kwok-node-1"]
        procs = [s._apiserver, s._etcd, *s._controllers]
        assert len(procs) == 5
        assert all(p is not None and p.poll() is None for p in procs)
    finally:
        s.stop()
    assert all(p is not None and p.poll() is not None for p in procs)
