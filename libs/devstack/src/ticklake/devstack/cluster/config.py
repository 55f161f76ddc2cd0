"""The node's configuration files and system add-ons, rendered from the plan (pure).

Each setting that is not a default says why; ``docs/testing.md`` lists the ones
this machine needs (cgroup v1 without systemd, root without CAP_SYS_RESOURCE,
no registry).
"""

from __future__ import annotations

import json
from typing import Any

from ticklake.devstack.cluster.layout import (
    CLUSTER_DOMAIN,
    CNI_NETWORK,
    NODE_NAME,
    ClusterLayout,
    NetworkPlan,
)

CNI_BIN_DIR = "/usr/lib/cni"
"""Where Debian's containernetworking-plugins puts bridge, host-local, portmap, loopback."""

COREDNS_PORT = 1053
"""CoreDNS listens above 1024 so it runs without NET_BIND_SERVICE as a non-root
user; its Service maps port 53 onto it."""

COREDNS_UID = 65532


def containerd_toml(layout: ClusterLayout, sandbox_image: str) -> str:
    """containerd 1.6 config: its own root, state and socket, CRI tuned for this host."""
    state = layout.containerd_state
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""version = 2
root = "{layout.containerd_root}"
state = "{state}"
# Plugins that would look at host paths or block devices we do not use.
disabled_plugins = [
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs",
]

[grpc]
  address = "{layout.containerd_socket}"

[ttrpc]
  address = "{layout.containerd_socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{layout.containerd_root / "opt"}"

[{cri}]
  # No registry is reachable: the sandbox image is ours, imported beforehand.
  sandbox_image = "{sandbox_image}"
  # root here lacks CAP_SYS_RESOURCE: the negative oom_score_adj the sandbox
  # asks for would make every runc create fail.
  restrict_oom_score_adj = true
  # Pod network namespaces under our state dir, not the host's /run/netns.
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  # No systemd as PID 1: cgroupfs, like the kubelet's cgroupDriver.
  SystemdCgroup = false
  Root = "{state / "runc"}"

[{cri}.cni]
  bin_dir = "{CNI_BIN_DIR}"
  conf_dir = "{layout.cni_conf_dir}"
  max_conf_num = 1
"""


def cni_conflist(layout: ClusterLayout, plan: NetworkPlan) -> str:
    """A bridge on the node's pod range (NetworkPolicies are not enforced by it)."""
    conf = {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": plan.bridge,
                "isGateway": True,
                # Pod traffic leaving the node (to the API server on the host
                # veth) leaves with the node's address; the host needs no route.
                "ipMasq": True,
                # A pod reaching itself through its own Service.
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": str(plan.pods), "gateway": str(plan.bridge_ip)}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(layout.cni_ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(conf, indent=2)


def kubelet_config(layout: ClusterLayout, plan: NetworkPlan) -> str:
    """KubeletConfiguration (JSON is YAML) for a cgroup v1 host without systemd."""
    conf: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": str(plan.node_ip),
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(layout.pki / "ca.crt")},
        },
        # Only holders of a certificate from the cluster's CA (the API
        # server) reach the kubelet at all, on the node's own address.
        "authorization": {"mode": "AlwaysAllow"},
        "cgroupDriver": "cgroupfs",
        # kubelet >= 1.35 refuses cgroup v1 unless told otherwise.
        "failCgroupV1": False,
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "clusterDomain": CLUSTER_DOMAIN,
        "clusterDNS": [str(plan.dns_ip)],
        # Pods with dnsPolicy Default (CoreDNS itself) learn no upstream
        # server: nothing in the cluster resolves names outside it.
        "resolvConf": str(layout.config / "resolv.conf"),
        "podLogsDir": str(layout.pod_logs),
        # A shared disk: evict only when it is really full; never collect the
        # images (they cannot be pulled again).
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "registerNode": True,
        "maxPods": 110,
    }
    return json.dumps(conf, indent=2)


def kube_proxy_config(layout: ClusterLayout, plan: NetworkPlan) -> str:
    """KubeProxyConfiguration: iptables mode, no host-wide conntrack changes."""
    conf: dict[str, Any] = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(layout.config / "kube-proxy.kubeconfig")},
        "mode": "iptables",
        "hostnameOverride": NODE_NAME,
        "bindAddress": str(plan.node_ip),
        "clusterCIDR": str(plan.pods),
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        # nf_conntrack_max is global and refused here: leave it alone (0 =
        # do not touch), and the per-netns timeouts too.
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        # route_localnet would be needed for NodePorts on 127.0.0.1; no use here.
        "iptables": {"localhostNodePorts": False},
    }
    return json.dumps(conf, indent=2)


def corefile() -> str:
    """Cluster names only: no ``forward`` (nothing is asked outside the machine) and
    no ``loop`` (it needs a next plugin to probe with)."""
    return f""".:{COREDNS_PORT} {{
    errors
    health {{
        lameduck 5s
    }}
    ready
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    prometheus :9153
    cache 30
    loadbalance
}}
"""


def coredns_manifests(plan: NetworkPlan, image: str) -> list[dict[str, Any]]:
    """CoreDNS in kube-system: RBAC, Corefile, a Deployment and the DNS Service."""
    labels = {"k8s-app": "kube-dns"}
    meta = {"name": "coredns", "namespace": "kube-system"}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "ticklake:coredns"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "ticklake:coredns"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "ticklake:coredns",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}],
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta,
            "data": {"Corefile": corefile()},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {**meta, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "priorityClassName": "system-cluster-critical",
                        "dnsPolicy": "Default",
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": COREDNS_UID,
                            "runAsGroup": COREDNS_UID,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "coredns",
                                "image": image,
                                "imagePullPolicy": "Never",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [
                                    {
                                        "name": "dns",
                                        "containerPort": COREDNS_PORT,
                                        "protocol": "UDP",
                                    },
                                    {
                                        "name": "dns-tcp",
                                        "containerPort": COREDNS_PORT,
                                        "protocol": "TCP",
                                    },
                                    {"name": "metrics", "containerPort": 9153},
                                ],
                                "resources": {
                                    "requests": {"cpu": "50m", "memory": "32Mi"},
                                    "limits": {"memory": "128Mi"},
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "livenessProbe": {
                                    "httpGet": {"path": "/health", "port": 8080},
                                    "initialDelaySeconds": 10,
                                },
                                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}},
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns"}],
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": labels},
            "spec": {
                "selector": labels,
                "clusterIP": str(plan.dns_ip),
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": COREDNS_PORT, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": COREDNS_PORT, "protocol": "TCP"},
                    {"name": "metrics", "port": 9153, "targetPort": 9153},
                ],
            },
        },
    ]


def node_egress_rules(plan: NetworkPlan) -> list[list[str]]:
    """iptables commands (run inside the node's netns) that keep pods in the cluster.

    The node has no default route, so pods cannot reach the world anyway; these
    rules also stop them at the host's veth address, except for the API server
    (the ``kubernetes`` Service's endpoint).
    """
    chain = "TICKLAKE-EGRESS"
    apiserver = ["-d", str(plan.host_ip), "-p", "tcp", "--dport", str(plan.ports.apiserver)]
    return [
        ["iptables", "-w", "-N", chain],
        ["iptables", "-w", "-A", chain, *apiserver, "-j", "RETURN"],
        ["iptables", "-w", "-A", chain, "-j", "DROP"],
        ["iptables", "-w", "-I", "FORWARD", "1", "-o", plan.node_veth, "-j", chain],
    ]
