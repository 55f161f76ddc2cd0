"""A real kube-apiserver + etcd, the CRDs, and the operator as a subprocess.

The API server is built by tools/k8s/build.sh on first use (cached outside the
repository) and started once per session. The operator runs as its own
process with a user that has only operator/deploy/rbac.yaml's rules, the way
it runs in a cluster; tests talk to the API as the admin.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes_asyncio import client, config
from opkit import OperatorProcess, eventually

from ticklake.core.topic_admin import TopicSpec, ensure_topics
from ticklake.devstack import kubeapi

ROOT = Path(__file__).resolve().parents[2]
CRD_FILES = [
    *sorted((ROOT / "charts" / "ticklake" / "crds").glob("*.yaml")),
    *sorted((Path(__file__).parent / "crds").glob("*.yaml")),
]
OPERATOR_USER = "ticklake-operator"


_HERE = Path(__file__).resolve().parent
_last_item: list[str] = []
_running: list[OperatorProcess | kubeapi.KubeAPIServer] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = [i.nodeid for i in items if Path(i.path).resolve().is_relative_to(_HERE)]
    _last_item[:] = here[-1:]


def pytest_runtest_teardown(item: pytest.Item) -> None:
    # The fixtures below are session-scoped (the API server takes seconds to
    # start), but the operator reconciling every second and the control plane
    # must not load the 2-core machine while the rest of the suite runs: stop
    # them after the last test of this folder. Their own teardown is a no-op then.
    if _last_item and item.nodeid == _last_item[0]:
        for thing in reversed(_running):
            thing.stop()


@pytest.fixture(scope="session")
def kube_server() -> Iterator[kubeapi.KubeAPIServer]:
    build = ROOT / "tools" / "k8s" / "build.sh"
    try:
        # With controller-manager, scheduler and kwok, Deployments get Pods.
        kubeapi.ensure_binaries(build, workloads=True)
        workloads = True
    except kubeapi.KubeAPIError:
        # Only the Pod tests need them; they fail on their own with a reason.
        kubeapi.ensure_binaries(build)
        workloads = False
    with kubeapi.KubeAPIServer(workloads=workloads) as server:
        _running.append(server)
        yield server


@pytest.fixture(scope="session")
async def api(kube_server: kubeapi.KubeAPIServer) -> AsyncIterator[client.ApiClient]:
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(kube_server.kubeconfig), client_configuration=cfg)
    async with client.ApiClient(configuration=cfg) as api_client:
        await _install_crds(api_client)
        await _install_rbac(api_client)
        yield api_client


async def _install_crds(api_client: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api_client)
    names = []
    for path in CRD_FILES:
        for doc in yaml.safe_load_all(path.read_text()):
            await ext.create_custom_resource_definition(doc)
            names.append(doc["metadata"]["name"])

    async def established() -> list[str]:
        missing = []
        for name in names:
            crd = await ext.read_custom_resource_definition(name)
            conds = {c.type: c.status for c in (crd.status.conditions or [])}
            if conds.get("Established") != "True":
                missing.append(name)
        return missing

    await eventually(established, lambda m: not m, what="CRDs established")


async def _install_rbac(api_client: client.ApiClient) -> None:
    rbac = client.RbacAuthorizationV1Api(api_client)
    role = yaml.safe_load((ROOT / "operator" / "deploy" / "rbac.yaml").read_text())
    await rbac.create_cluster_role(role)
    await rbac.create_cluster_role_binding(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": OPERATOR_USER},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role["metadata"]["name"],
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": OPERATOR_USER}
            ],
        }
    )


@pytest.fixture(scope="session")
def operator(
    kube_server: kubeapi.KubeAPIServer,
    api: client.ApiClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    kubeconfig = kube_server.user_kubeconfig(OPERATOR_USER)
    op = OperatorProcess(kubeconfig, tmp_path_factory.mktemp("operator"))
    op.start()
    _running.append(op)
    try:
        yield op
    finally:
        op.stop()
        # Visible with -rA / on failure: what the operator said.
        print(op.logs()[-5000:])


@pytest.fixture
async def namespace(api: client.ApiClient) -> AsyncIterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    await core.create_namespace({"metadata": {"name": name}})
    yield name
    # No namespace controller runs, so deletion would hang in Terminating;
    # every test uses fresh names instead of cleaning up.


@pytest.fixture
def new_topic(kafka_bootstrap: str) -> Callable[..., Awaitable[str]]:
    async def create(partitions: int, name: str | None = None) -> str:
        topic = name or f"ticks.{uuid.uuid4().hex[:8]}"
        await ensure_topics(kafka_bootstrap, [TopicSpec(topic, partitions)])
        return topic

    return create
