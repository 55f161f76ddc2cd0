"""The one-node cluster itself: a real kubelet runs real containers.

CoreDNS (our FROM-scratch image, imported into containerd) runs as a Pod; the
test reaches it through ``kubectl port-forward`` of its Service and asks it for
the ``kubernetes`` Service's name, which CoreDNS can only answer by listing
Services through that same Service's ClusterIP (pod -> kube-proxy DNAT -> the
API server on the host's veth address).
"""

from __future__ import annotations

import json

from nodekit import dns_a_over_tcp, eventually, port_forward

from ticklake.devstack.cluster.cluster import NODE_NAME, Cluster


def test_node_is_ready_with_its_address_in_the_node_namespace(cluster: Cluster) -> None:
    node = json.loads(cluster.kubectl("get", "node", NODE_NAME, "-o", "json"))
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert ready["Ready"] == "True"
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == str(cluster.plan.node_ip)
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")


def test_coredns_pod_runs_and_resolves_cluster_names(cluster: Cluster) -> None:
    pods = json.loads(
        cluster.kubectl("-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-dns", "-o", "json")
    )["items"]
    assert [p["status"]["phase"] for p in pods] == ["Running"]
    assert pods[0]["status"]["podIP"].startswith("10.250.64.")
    with port_forward(cluster, "svc/kube-dns", 53, namespace="kube-system") as port:
        answer = eventually(
            lambda: dns_a_over_tcp(port, "kubernetes.default.svc.cluster.local"),
            lambda a: bool(a),
            what="CoreDNS answers for the kubernetes Service",
            timeout_s=60,
        )
    assert answer == [str(cluster.plan.kubernetes_service_ip)]


def test_up_again_reuses_the_running_cluster(cluster: Cluster) -> None:
    pid_before = cluster.status().components["kube-apiserver"]
    assert cluster.up(log=lambda _: None) is False
    assert cluster.status().components["kube-apiserver"] == pid_before
