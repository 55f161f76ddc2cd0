"""A one-node Kubernetes cluster from host processes, isolated in a network namespace.

The control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler) runs on the host, bound to loopback and to the host end of a
veth pair; the node (containerd, kubelet, kube-proxy) runs in the network
namespace ``ticklake-node``, like kind's node container, so the CNI bridge, pod
routes, iptables chains and per-namespace sysctls live and die with it. See
``docs/testing.md`` for why this and not kind.

:meth:`Cluster.up` is idempotent (a healthy cluster is reused), :meth:`Cluster.down`
undoes everything the state file records, also after a crash.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ticklake.devstack import kubeapi
from ticklake.devstack.cluster import config, host, processes, scratch_image
from ticklake.devstack.cluster.layout import (
    CNI_NETWORK,
    NODE_NAME,
    ClusterLayout,
    NetworkPlan,
    find_clashes,
)

ETCD = "etcd"
APISERVER = "kube-apiserver"
CONTROLLER_MANAGER = "kube-controller-manager"
SCHEDULER = "kube-scheduler"
CONTAINERD = "containerd"
KUBELET = "kubelet"
CRI_NOT_READY = "server is not initialized yet"
"""What a kubelet started before containerd's CRI service is ready dies with."""
KUBE_PROXY = "kube-proxy"
CONTROL_PLANE = (ETCD, APISERVER, CONTROLLER_MANAGER, SCHEDULER)
NODE = (CONTAINERD, KUBELET, KUBE_PROXY)
COMPONENTS = CONTROL_PLANE + NODE

BUILT_BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kubectl",
    "coredns",
    "pause",
)
"""Built from the Go module proxy (and tools/k8s/pause) by ``tools/k8s/build.sh``."""

HOST_TOOLS = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "iptables": "iptables",
    "iptables-restore": "iptables",
    "conntrack": "conntrack",
    "ip": "iproute2",
    "nsenter": "util-linux",
    "umount": "mount",
}
"""Host commands and the Debian package each comes from."""

CNI_PLUGINS = ("bridge", "host-local", "portmap", "loopback")
KUBELET_CONTAINER_LOGS = Path("/var/log/containers")
"""Where the kubelet links every container's log (a fixed host path)."""
CNI_CACHE = Path("/var/lib/cni")
"""libcni's result cache (a fixed host path in containerd 1.6)."""

PAUSE_REPO = "ticklake.dev/pause"
COREDNS_REPO = "ticklake.dev/coredns"


class ClusterError(RuntimeError):
    """The cluster cannot start (clash, missing prerequisite) or did not become ready."""


def missing_prerequisites(bin_dir: Path) -> list[str]:
    """What is missing to run the cluster, each with how to install it."""
    missing = []
    absent = [b for b in BUILT_BINARIES if not os.access(bin_dir / b, os.X_OK)]
    if absent:
        missing.append(
            f"{', '.join(absent)} not in {bin_dir}: run `bash tools/k8s/build.sh` "
            "(or `make install-test`)"
        )
    path = f"{os.environ.get('PATH', '')}:{host.SYSTEM_PATH}"
    packages = sorted(
        {pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool, path=path) is None}
    )
    if any(not (Path(config.CNI_BIN_DIR) / p).exists() for p in CNI_PLUGINS):
        packages.append("containernetworking-plugins")
    if packages:
        missing.append(
            f"Debian packages missing: {' '.join(packages)}; run "
            f"`apt-get install {' '.join(packages)}` (or `make install-test`)"
        )
    if os.geteuid() != 0:
        missing.append("the cluster needs root (network namespace, mounts, cgroups)")
    return missing


@dataclass(frozen=True)
class SystemImages:
    """The cluster's own images: archive and reference of each."""

    pause: Path
    pause_ref: str
    coredns: Path
    coredns_ref: str


@dataclass
class NodeStatus:
    components: dict[str, int | None]
    """Each component's pid, or None if it does not run."""
    apiserver_ready: bool
    node_ready: bool

    @property
    def healthy(self) -> bool:
        return all(self.components.values()) and self.apiserver_ready and self.node_ready


@dataclass
class Cluster:
    """The machine's one-node cluster (handle; the processes outlive it)."""

    layout: ClusterLayout = field(default_factory=ClusterLayout.default)
    plan: NetworkPlan = field(default_factory=NetworkPlan)
    bin_dir: Path = field(default_factory=kubeapi.cache_bin_dir)
    ready_timeout_s: float = 240.0
    """Node Ready takes ~10 s after the kubelet starts when the machine is quiet;
    generous because six jobs may share two cores."""

    # --- public API -------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (``system:masters``) for kubectl, helm and clients."""
        return self.layout.kubeconfig

    @property
    def server(self) -> str:
        return self.plan.apiserver_url

    def up(self, *, log: Any = print) -> bool:
        """Start the cluster, or reuse a healthy one; True if it was started now."""
        with self._lock():
            state = self._read_state()
            if state is not None:
                if self.status().healthy:
                    log(f"cluster already up (kubeconfig {self.kubeconfig})")
                    return False
                log("cleaning up a cluster that is not healthy (crashed or half started)")
                self._teardown(state, log=log)
            problems = missing_prerequisites(self.bin_dir)
            if problems:
                raise ClusterError("cannot start the cluster:\n  " + "\n  ".join(problems))
            self._refuse_clashes()
            state = {
                "sysctls": host.read_sysctls(host.KUBELET_SYSCTLS),
                "var_log_containers_existed": KUBELET_CONTAINER_LOGS.exists(),
                "var_lib_cni_existed": CNI_CACHE.exists(),
                "netns": self.plan.netns,
                "host_veth": self.plan.host_veth,
            }
            self.layout.run.mkdir(parents=True, exist_ok=True)
            self._write_state(state)
            try:
                t0 = time.monotonic()
                self._create_network()
                self._write_pki()
                self._write_configs()
                self._start_control_plane()
                log(f"control plane ready in {time.monotonic() - t0:.1f}s ({self.server})")
                images = self._build_system_images()
                self._start_node(images)
                self._install_addons(images)
                self._wait_node_ready()
                log(f"node {NODE_NAME} Ready in {time.monotonic() - t0:.1f}s")
                self._wait_rollout("kube-system", "coredns")
                log(f"CoreDNS ready in {time.monotonic() - t0:.1f}s")
                state["up_seconds"] = round(time.monotonic() - t0, 1)
                self._write_state(state)
            except BaseException:
                self._save_failure_logs()
                self._teardown(state, log=log)
                raise
        return True

    def down(self, *, purge: bool = False, log: Any = print) -> None:
        """Stop everything and undo every host change. Idempotent.

        ``purge`` also deletes the image store and the volumes' data.
        """
        with self._lock():
            state = self._read_state()
            if state is None and not self.plan.netns_path.exists():
                log("cluster is down")
            else:
                self._teardown(state or {}, log=log)
                log("cluster stopped, host restored")
            if purge and self.layout.root.exists():
                host.unmount_all(self.layout.root)
                shutil.rmtree(self.layout.root, ignore_errors=True)
                log(f"removed {self.layout.root}")

    def status(self) -> NodeStatus:
        components = {name: processes.running(self.layout, name) for name in COMPONENTS}
        apiserver_ready = node_ready = False
        if components[APISERVER] and self.kubeconfig.exists():
            with contextlib.suppress(OSError, ssl.SSLError, kubeapi.KubeAPIError):
                kubeapi.wait_http(
                    f"{self.server}/readyz",
                    ssl_ctx=self._ssl_context(),
                    timeout_s=3,
                    what=APISERVER,
                )
                apiserver_ready = True
        if apiserver_ready:
            node_ready = self._node_ready()
        return NodeStatus(components, apiserver_ready, node_ready)

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> str:
        """Run kubectl against the cluster; raise with its output if it fails."""
        proc = subprocess.run(
            [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def apply(self, manifests: Sequence[dict[str, Any]]) -> None:
        """``kubectl apply`` the given objects (server-side, so re-applying is a no-op)."""
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifests)})
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=body)

    def ctr(self, *args: str, timeout: float = 600) -> str:
        """Run containerd's ``ctr`` in the CRI namespace (k8s.io) of the node's containerd."""
        return host.run(
            ["ctr", f"--address={self.layout.containerd_socket}", "-n", "k8s.io", *args]
        )

    def load_images(self, archives: Sequence[Path]) -> list[Path]:
        """Import docker-archive tars into the node; skip those already imported.

        An archive may hold several images (``podman save --multi-image-archive``).
        Returns the archives that were imported now. Pods then use the images
        with ``imagePullPolicy: Never`` (or IfNotPresent).
        """
        record_file = self.layout.imported_images
        record: dict[str, str] = json.loads(record_file.read_text()) if record_file.exists() else {}
        present = set(self.ctr("images", "ls", "-q").split())
        imported = []
        for archive in archives:
            digest = scratch_image.archive_identity(archive)
            refs = record.get(digest, "").split()
            if refs and all(r in present for r in refs):
                continue
            out = self.ctr("images", "import", "--no-unpack=false", str(archive))
            # ctr prints "unpacking <ref> (sha256:...)...done" per image.
            refs = [w for line in out.splitlines() for w in line.split()[1:2]]
            if not refs:
                refs = sorted(set(self.ctr("images", "ls", "-q").split()) - present)
            record[digest] = " ".join(refs)
            present.update(refs)
            imported.append(archive)
        record_file.parent.mkdir(parents=True, exist_ok=True)
        record_file.write_text(json.dumps(record, indent=2))
        return imported

    def host_path_volume(
        self, name: str, *, capacity: str = "2Gi", uid: int = 10001, gid: int = 10001
    ) -> dict[str, Any]:
        """A hostPath PersistentVolume (``storageClassName: ""``) owned by ``uid``.

        No dynamic provisioner runs here; a claim with ``storageClassName: ""``
        binds to it. The directory is kept across ``down`` (``--purge`` deletes it).
        """
        path = self.layout.volumes / name
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, uid, gid)
        path.chmod(0o770)
        return {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name, "labels": {"ticklake.dev/volume": name}},
            "spec": {
                "capacity": {"storage": capacity},
                "accessModes": ["ReadWriteOnce", "ReadWriteMany"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "",
                "hostPath": {"path": str(path), "type": "Directory"},
            },
        }

    @contextlib.contextmanager
    def exclusive_use(self, *, wait_s: float = 2400.0, log: Any = print) -> Iterator[None]:
        """Hold the cluster for one test session: other sessions wait here.

        The machine has one cluster, and test sessions install releases in
        fixed namespaces; two at once would delete each other's. (A separate
        lock from the one ``up``/``down`` take, so those work inside it.)
        """
        self.layout.root.mkdir(parents=True, exist_ok=True)
        with (self.layout.root / "session.lock").open("w") as f:
            deadline = time.monotonic() + wait_s
            said = False
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise ClusterError(
                            f"another test session has used the cluster for over {wait_s:.0f}s "
                            f"({self.layout.root / 'session.lock'})"
                        ) from None
                    if not said:
                        log("waiting for another test session to finish with the cluster")
                        said = True
                    time.sleep(2)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # --- steps of up ------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.layout.root.mkdir(parents=True, exist_ok=True)
        with self.layout.lock_file.open("w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def _read_state(self) -> dict[str, Any] | None:
        try:
            state: dict[str, Any] = json.loads(self.layout.state_file.read_text())
        except (OSError, ValueError):
            return None
        return state

    def _write_state(self, state: dict[str, Any]) -> None:
        tmp = self.layout.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.layout.state_file)

    def _refuse_clashes(self) -> None:
        clashes = find_clashes(
            self.plan,
            addresses=host.ipv4_addresses(),
            routes=host.ipv4_routes(),
            links=host.link_names(),
            netns=host.netns_names(),
            ports_in_use=host.ports_in_use("127.0.0.1", self.plan.ports.host_ports()),
        )
        if clashes:
            raise ClusterError(
                "refusing to start, the host already uses what the cluster needs:\n  "
                + "\n  ".join(clashes)
                + "\n(a leftover of ours? `ticklake-stack cluster down` removes what its state "
                f"file {self.layout.state_file} records; anything else is not ours to remove)"
            )

    def _create_network(self) -> None:
        p = self.plan
        ns = ["ip", "-n", p.netns]
        host.run(["ip", "netns", "add", p.netns])
        host.run(
            ["ip", "link", "add", p.host_veth, "type", "veth", "peer", "name", p.node_veth,
             "netns", p.netns]
        )  # fmt: skip
        host.run(["ip", "addr", "add", f"{p.host_ip}/{p.link.prefixlen}", "dev", p.host_veth])
        host.run(["ip", "link", "set", p.host_veth, "up"])
        host.run([*ns, "addr", "add", f"{p.node_ip}/{p.link.prefixlen}", "dev", p.node_veth])
        host.run([*ns, "link", "set", p.node_veth, "up"])
        host.run([*ns, "link", "set", "lo", "up"])
        # Pods are routed through the node; these sysctls are the netns's own.
        in_ns = ["nsenter", f"--net={p.netns_path}", "--"]
        host.run([*in_ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        host.run([*in_ns, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"], check=False)
        for rule in config.node_egress_rules(p):
            host.run([*in_ns, *rule])

    def _write_pki(self) -> None:
        d = self.layout.pki
        d.mkdir(parents=True, exist_ok=True)
        days = 365
        ca = kubeapi.make_ca(validity_days=days)
        ca.write(d, "ca")
        kubeapi.issue_cert(
            ca,
            "kube-apiserver",
            server=True,
            san_ips=(str(self.plan.host_ip), str(self.plan.kubernetes_service_ip), "127.0.0.1"),
            validity_days=days,
        ).write(d, "serving")
        kubeapi.write_service_account_keys(d)
        users = {
            "admin": ("admin", ("system:masters",)),
            "apiserver-kubelet": ("kube-apiserver-kubelet-client", ("system:masters",)),
            "kubelet": (f"system:node:{NODE_NAME}", ("system:nodes",)),
            "kube-proxy": ("system:kube-proxy", ()),
        }
        self.layout.config.mkdir(parents=True, exist_ok=True)
        for stem, (cn, groups) in users.items():
            crt, key = kubeapi.issue_cert(
                ca, cn, orgs=groups, server=False, validity_days=days
            ).write(d, f"user-{stem}")
            target = (
                self.layout.kubeconfig
                if stem == "admin"
                else self.layout.config / f"{stem}.kubeconfig"
            )
            target.write_text(kubeapi.kubeconfig_yaml(self.server, d / "ca.crt", crt, key, cn))

    def _write_configs(self) -> None:
        c = self.layout.config
        self.layout.cni_conf_dir.mkdir(parents=True, exist_ok=True)
        (self.layout.cni_conf_dir / "10-ticklake.conflist").write_text(
            config.cni_conflist(self.layout, self.plan)
        )
        (c / "kubelet.json").write_text(config.kubelet_config(self.layout, self.plan))
        (c / "kube-proxy.json").write_text(config.kube_proxy_config(self.layout, self.plan))
        # No nameserver: pods with dnsPolicy Default resolve nothing outside.
        (c / "resolv.conf").write_text("# ticklake cluster: no upstream DNS\n")
        for d in (self.layout.kubelet_root, self.layout.pod_logs, self.layout.cni_ipam_dir):
            d.mkdir(parents=True, exist_ok=True)

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.layout.pki / "ca.crt"))
        ctx.load_cert_chain(
            str(self.layout.pki / "user-admin.crt"), str(self.layout.pki / "user-admin.key")
        )
        return ctx

    def _wait(self, name: str, url: str, ssl_ctx: ssl.SSLContext | None) -> None:
        kubeapi.wait_http(
            url,
            ssl_ctx=ssl_ctx,
            timeout_s=self.ready_timeout_s,
            what=name,
            exited=lambda: None if processes.running(self.layout, name) else 1,
            log_tail=lambda: processes.log_tail(self.layout, name),
        )

    def _start_control_plane(self) -> None:
        p, d, b = self.plan, self.layout.pki, self.bin_dir
        etcd_url = f"http://127.0.0.1:{p.ports.etcd}"
        processes.start(
            self.layout,
            ETCD,
            kubeapi.etcd_args(
                b, self.layout.etcd_data, etcd_url, f"http://127.0.0.1:{p.ports.etcd_peer}"
            ),
        )
        self._wait(ETCD, f"{etcd_url}/health", None)
        processes.start(
            self.layout,
            APISERVER,
            kubeapi.apiserver_args(
                b,
                etcd_url=etcd_url,
                address=str(p.host_ip),
                port=p.ports.apiserver,
                pki_dir=d,
                service_cidr=str(p.services),
                real_nodes=True,
            ),
        )
        self._wait(APISERVER, f"{self.server}/readyz", self._ssl_context())
        kc = self.kubeconfig
        processes.start(
            self.layout,
            CONTROLLER_MANAGER,
            [
                str(b / CONTROLLER_MANAGER),
                *kubeapi.controller_manager_args(
                    kc, p.ports.controller_manager, d, real_nodes=True
                ),
            ],
        )
        processes.start(
            self.layout,
            SCHEDULER,
            [str(b / SCHEDULER), *kubeapi.scheduler_args(kc, p.ports.scheduler)],
        )
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # their self-signed loopback serving certs
        self._wait(
            CONTROLLER_MANAGER, f"https://127.0.0.1:{p.ports.controller_manager}/healthz", insecure
        )
        self._wait(SCHEDULER, f"https://127.0.0.1:{p.ports.scheduler}/healthz", insecure)

    def _build_system_images(self) -> SystemImages:
        """Archives of the sandbox and CoreDNS images, tagged by their binary's hash."""
        built = []
        for key, repo in (("pause", PAUSE_REPO), ("coredns", COREDNS_REPO)):
            binary = self.bin_dir / key
            tag = hashlib.sha256(binary.read_bytes()).hexdigest()[:12]
            archive = self.layout.images / f"{key}-{tag}.tar"
            if not archive.exists():
                scratch_image.write_scratch_archive(
                    archive, f"{repo}:{tag}", binary, path_in_image=f"/{key}"
                )
            built.append((archive, f"{repo}:{tag}"))
        (pause, pause_ref), (coredns, coredns_ref) = built
        return SystemImages(pause, pause_ref, coredns, coredns_ref)

    def _start_node(self, images: SystemImages) -> None:
        c, p = self.layout.config, self.plan
        pause_ref = images.pause_ref
        (c / "containerd.toml").write_text(config.containerd_toml(self.layout, pause_ref))
        processes.start(
            self.layout,
            CONTAINERD,
            ["containerd", f"--config={c / 'containerd.toml'}"],
            netns=p.netns,
        )
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            try:
                self.ctr("version")
                break
            except host.HostError:
                if not processes.running(self.layout, CONTAINERD) or time.monotonic() > deadline:
                    raise ClusterError(
                        "containerd did not start: " + processes.log_tail(self.layout, CONTAINERD)
                    ) from None
                time.sleep(0.3)
        self.load_images([images.pause, images.coredns])
        self._start_kubelet()
        processes.start(
            self.layout,
            KUBE_PROXY,
            [str(self.bin_dir / KUBE_PROXY), f"--config={c / 'kube-proxy.json'}", "--v=1"],
            netns=p.netns,
        )

    def _install_addons(self, images: SystemImages) -> None:
        self.apply(config.coredns_manifests(self.plan, images.coredns_ref))

    def _start_kubelet(self) -> None:
        c, p = self.layout.config, self.plan
        processes.start(
            self.layout,
            KUBELET,
            [
                str(self.bin_dir / KUBELET),
                f"--config={c / 'kubelet.json'}",
                f"--kubeconfig={c / 'kubelet.kubeconfig'}",
                f"--root-dir={self.layout.kubelet_root}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={p.node_ip}",
                "--v=1",
            ],
            netns=p.netns,
        )

    def _node_ready(self) -> bool:
        out = self.kubectl("get", "node", NODE_NAME, "-o", "json", check=False, timeout=15)
        if not out:
            return False
        conditions = json.loads(out).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _wait_node_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while not self._node_ready():
            kubelet_log = processes.log_tail(self.layout, KUBELET)
            if not processes.running(self.layout, KUBELET) and CRI_NOT_READY in kubelet_log:
                # containerd answers `ctr version` before its CRI service has finished
                # initialising; a kubelet started in between exits at once. Start it again.
                time.sleep(1.0)
                self._start_kubelet()
                continue
            for name in NODE:
                if not processes.running(self.layout, name):
                    raise ClusterError(f"{name} exited: {processes.log_tail(self.layout, name)}")
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"node not Ready after {self.ready_timeout_s}s: "
                    + processes.log_tail(self.layout, KUBELET)
                )
            time.sleep(0.5)

    def _wait_rollout(self, namespace: str, deployment: str) -> None:
        self.kubectl(
            "-n", namespace, "rollout", "status", f"deployment/{deployment}",
            f"--timeout={int(self.ready_timeout_s)}s",
            timeout=self.ready_timeout_s + 10,
        )  # fmt: skip

    # --- down -------------------------------------------------------------------

    def _save_failure_logs(self) -> None:
        """Keep the logs of a failed start (``down`` deletes the run dir)."""
        target = self.layout.root / "failed-start-logs"
        shutil.rmtree(target, ignore_errors=True)
        if self.layout.logs.exists():
            shutil.copytree(self.layout.logs, target)

    def _teardown(self, state: dict[str, Any], *, log: Any) -> None:
        """Undo everything ``up`` did, in reverse, tolerating half-done states."""
        layout, plan = self.layout, self.plan
        for name in (KUBE_PROXY, KUBELET):
            processes.stop(layout, name)
        # Containers: every process in the kubelet's cgroups.
        for cg in host.kubepods_cgroups():
            host.kill_pids(host.cgroup_pids(cg))
        processes.stop(layout, CONTAINERD)
        # Shims, and anything else left in the node's namespace.
        if plan.netns_path.exists():
            left = host.netns_pids(plan.netns)
            host.kill_pids(left)
            host.wait_gone(left, 10)
        for cg in host.kubepods_cgroups():
            host.kill_pids(host.cgroup_pids(cg))
        for name in reversed(CONTROL_PLANE):
            processes.stop(layout, name)
        unmounted = host.unmount_all(layout.run)
        for cg in host.kubepods_cgroups():
            host.wait_gone(host.cgroup_pids(cg), 10)
            kept = host.remove_cgroup_tree(cg)
            if kept:
                log(f"warning: cgroups not removed: {', '.join(map(str, kept[:5]))}")
        netns = state.get("netns", plan.netns)
        if netns in host.netns_names():
            host.run(["ip", "netns", "del", netns], check=False)
        veth = state.get("host_veth", plan.host_veth)
        if veth in host.link_names():
            host.run(["ip", "link", "del", veth], check=False)
        failed = host.restore_sysctls(state.get("sysctls", {}))
        if failed:
            log(f"warning: could not restore sysctls {', '.join(failed)}")
        self._remove_host_files(state)
        if host.mounts_under(layout.run):
            raise ClusterError(f"still mounted under {layout.run}; not deleting it")
        shutil.rmtree(layout.run, ignore_errors=True)
        if unmounted:
            log(f"unmounted {len(unmounted)} mounts")

    def _remove_host_files(self, state: dict[str, Any]) -> None:
        """The kubelet's log links and libcni's cache entries for our network."""
        if KUBELET_CONTAINER_LOGS.is_dir():
            for link in KUBELET_CONTAINER_LOGS.iterdir():
                if link.is_symlink() and str(os.readlink(link)).startswith(
                    str(self.layout.pod_logs)
                ):
                    link.unlink()
            if not state.get("var_log_containers_existed", True):
                with contextlib.suppress(OSError):
                    KUBELET_CONTAINER_LOGS.rmdir()
        results = CNI_CACHE / "results"
        if results.is_dir():
            # Ours: our network's entries, and containerd's loopback entries
            # whose sandbox is one of our pod namespaces (under our state dir).
            for entry in results.iterdir():
                with contextlib.suppress(OSError):
                    if entry.name.startswith(f"{CNI_NETWORK}-") or (
                        entry.name.startswith("cni-loopback-")
                        and str(self.layout.root) in entry.read_text(errors="replace")
                    ):
                        entry.unlink()
        if not state.get("var_lib_cni_existed", True):
            for d in (results, CNI_CACHE):
                with contextlib.suppress(OSError):
                    d.rmdir()
