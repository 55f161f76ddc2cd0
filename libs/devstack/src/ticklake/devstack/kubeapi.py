"""A real Kubernetes API server (etcd + kube-apiserver) on loopback, envtest-style.

No cluster can run on a developer machine or in CI here, but the API server can:
it validates objects against CRD schemas, serves subresources (``scale``,
``status``), enforces RBAC and stores Events, which is everything the operator
talks to. By default no kubelet, scheduler or controller-manager runs, so a
Deployment's ``spec.replicas`` changes but no Pod ever appears; with
``workloads=True`` kube-controller-manager, kube-scheduler and kwok run too, so
Deployments get fake Running Pods (and ``restartPolicy: Never`` Pods, such as
``helm test`` hooks, succeed at once).

The binaries are built from the Go module proxy by ``tools/k8s/build.sh`` into
``$TICKLAKE_CACHE/bin`` (default ``~/.cache/ticklake/bin``); see
``docs/operator.md``.

Security material is generated per start in a temporary directory: a CA, the
API server's serving certificate, a service-account signing key pair and
client certificates. The admin user is in ``system:masters``; other users
(:meth:`KubeAPIServer.user_kubeconfig`) get only what RBAC grants them, so a
test can prove the operator's Role is sufficient.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ETCD = "etcd"
KUBE_APISERVER = "kube-apiserver"
CONTROLLER_MANAGER = "kube-controller-manager"
SCHEDULER = "kube-scheduler"
KWOK = "kwok"
FAKE_NODE_LABEL = ("ticklake.dev/fake-node", "kwok")
"""Label of the Nodes that kwok plays the kubelet for."""

# kwok's stages: what a kubelet would do, reduced to what the tests need.
# A labelled Node becomes Ready; a Pod bound to it becomes Running and Ready
# at once, unless it runs once (restartPolicy Never: `helm test` hooks, Job
# pods), which instead finishes at once with exit code 0; a Pod being deleted
# is let go. The two Pod stages select disjoint Pods because kwok picks at
# random among matching stages. kwok evaluates `key` as a jq expression and
# fills the status templates (Go templates) itself.
KWOK_STAGES = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: ticklake-node-ready
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchExpressions:
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: NotIn
      values: ["True"]
  next:
    statusTemplate: |
      conditions:
      - type: Ready
        status: "True"
        reason: KwokReady
        message: "kwok plays this node's kubelet"
        lastHeartbeatTime: {{ Now | Quote }}
        lastTransitionTime: {{ Now | Quote }}
      addresses:
      - type: InternalIP
        address: {{ NodeIP | Quote }}
      allocatable: {cpu: "64", memory: 256Gi, pods: "1000"}
      capacity: {cpu: "64", memory: 256Gi, pods: "1000"}
      phase: Running
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: ticklake-pod-running
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - key: .metadata.deletionTimestamp
      operator: DoesNotExist
    - key: .status.podIP
      operator: DoesNotExist
    - key: .spec.restartPolicy
      operator: NotIn
      values: ["Never"]
  next:
    statusTemplate: |
      phase: Running
      startTime: {{ Now | Quote }}
      hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
      podIP: {{ PodIP | Quote }}
      conditions:
      - {type: PodScheduled, status: "True", lastTransitionTime: {{ Now | Quote }}}
      - {type: Initialized, status: "True", lastTransitionTime: {{ Now | Quote }}}
      - {type: ContainersReady, status: "True", lastTransitionTime: {{ Now | Quote }}}
      - {type: Ready, status: "True", lastTransitionTime: {{ Now | Quote }}}
      containerStatuses:
      {{ range .spec.containers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        ready: true
        started: true
        restartCount: 0
        state: {running: {startedAt: {{ Now | Quote }}}}
      {{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: ticklake-pod-complete
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - key: .metadata.deletionTimestamp
      operator: DoesNotExist
    - key: .status.podIP
      operator: DoesNotExist
    - key: .spec.restartPolicy
      operator: In
      values: ["Never"]
  next:
    statusTemplate: |
      phase: Succeeded
      startTime: {{ Now | Quote }}
      hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
      podIP: {{ PodIP | Quote }}
      conditions:
      - {type: PodScheduled, status: "True", lastTransitionTime: {{ Now | Quote }}}
      - {type: Initialized, status: "True", lastTransitionTime: {{ Now | Quote }}}
      - type: ContainersReady
        status: "False"
        reason: PodCompleted
        lastTransitionTime: {{ Now | Quote }}
      - type: Ready
        status: "False"
        reason: PodCompleted
        lastTransitionTime: {{ Now | Quote }}
      containerStatuses:
      {{ range .spec.containers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        ready: false
        started: false
        restartCount: 0
        state:
          terminated:
            exitCode: 0
            reason: Completed
            startedAt: {{ Now | Quote }}
            finishedAt: {{ Now | Quote }}
      {{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: ticklake-pod-delete
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - key: .metadata.deletionTimestamp
      operator: Exists
  next:
    finalizers: {empty: true}
    delete: true
"""


class KubeAPIError(RuntimeError):
    """The API server or etcd could not be built or did not become ready."""


def cache_bin_dir() -> Path:
    """Where ``tools/k8s/build.sh`` puts the binaries (kept outside the repo)."""
    root = os.environ.get("TICKLAKE_CACHE") or str(Path.home() / ".cache" / "ticklake")
    return Path(root) / "bin"


def binaries_present(bin_dir: Path | None = None, *, workloads: bool = False) -> bool:
    """etcd and kube-apiserver exist (and, with ``workloads``, the Pod-faking trio)."""
    d = bin_dir or cache_bin_dir()
    names = [ETCD, KUBE_APISERVER]
    if workloads:
        names += [CONTROLLER_MANAGER, SCHEDULER, KWOK]
    return all(os.access(d / name, os.X_OK) for name in names)


def ensure_binaries(
    build_script: Path, bin_dir: Path | None = None, *, workloads: bool = False
) -> Path:
    """Run the build script if a binary is missing; return the bin directory.

    The first build on a fresh machine takes minutes (see docs/operator.md for
    measured times); later calls return at once.
    """
    d = bin_dir or cache_bin_dir()
    if not binaries_present(d, workloads=workloads):
        env = dict(os.environ)
        env.setdefault("TICKLAKE_CACHE", str(d.parent))
        result = subprocess.run(["bash", str(build_script)], env=env, check=False)
        if result.returncode != 0 or not binaries_present(d, workloads=workloads):
            raise KubeAPIError(f"{build_script} failed (exit {result.returncode}); see its log")
    return d


def free_port() -> int:
    """A loopback TCP port that is free now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- certificates -----------------------------------------------------------


@dataclass(frozen=True)
class KeyCert:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        crt, key = directory / f"{stem}.crt", directory / f"{stem}.key"
        crt.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        key.write_bytes(key_pem(self.key))
        key.chmod(0o600)
        return crt, key

    @classmethod
    def load(cls, directory: Path, stem: str) -> KeyCert:
        """Read back what :meth:`write` wrote (a long-lived cluster's CA)."""
        key = serialization.load_pem_private_key((directory / f"{stem}.key").read_bytes(), None)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise KubeAPIError(f"{directory / stem}.key: unexpected key type")
        return cls(key, x509.load_pem_x509_certificate((directory / f"{stem}.crt").read_bytes()))


def key_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(cn: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _validity(builder: x509.CertificateBuilder, days: int) -> x509.CertificateBuilder:
    # Backdated a little so a clock a few seconds off does not reject it.
    now = dt.datetime.now(dt.UTC)
    return builder.not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(
        now + dt.timedelta(days=days)
    )


DEFAULT_SAN_IPS = ("127.0.0.1", "10.0.0.1")
"""Serving-certificate IPs of the loopback API server (10.0.0.1: its `kubernetes` Service)."""


def make_ca(validity_days: int = 2) -> KeyCert:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("ticklake-devstack-ca")
    cert = (
        _validity(x509.CertificateBuilder(), validity_days)
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return KeyCert(key, cert)


def issue_cert(
    ca: KeyCert,
    cn: str,
    *,
    orgs: tuple[str, ...] = (),
    server: bool,
    san_ips: tuple[str, ...] = DEFAULT_SAN_IPS,
    validity_days: int = 2,
) -> KeyCert:
    """A client (or, with ``server``, serving) certificate signed by ``ca``."""
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _validity(x509.CertificateBuilder(), validity_days)
        .subject_name(_name(cn, orgs))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes"),
                    x509.DNSName("kubernetes.default"),
                    x509.DNSName("kubernetes.default.svc"),
                    x509.DNSName("kubernetes.default.svc.cluster.local"),
                    *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in san_ips),
                ]
            ),
            critical=False,
        )
    return KeyCert(key, builder.sign(ca.key, hashes.SHA256()))


# --- command lines (shared with the real one-node cluster, devstack.cluster) ---


def etcd_args(bin_dir: Path, data_dir: Path, client_url: str, peer_url: str) -> list[str]:
    """etcd serving one member at ``client_url`` (plain HTTP: loopback only)."""
    return [
        str(bin_dir / ETCD),
        "--name=devstack",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=devstack={peer_url}",
        # Test data is thrown away at the end; fsync only slows the tests.
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def write_service_account_keys(pki_dir: Path) -> None:
    """``sa.key``/``sa.pub``: the key pair that signs and checks ServiceAccount tokens."""
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (pki_dir / "sa.key").write_bytes(key_pem(sa_key))
    (pki_dir / "sa.key").chmod(0o600)
    (pki_dir / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def apiserver_args(
    bin_dir: Path,
    *,
    etcd_url: str,
    address: str,
    port: int,
    pki_dir: Path,
    service_cidr: str,
    real_nodes: bool,
) -> list[str]:
    """kube-apiserver on ``address:port`` with the certificates in ``pki_dir``.

    ``pki_dir`` holds ``ca``, ``serving`` (see :func:`issue_cert`) and the
    ServiceAccount keys (:func:`write_service_account_keys`); with
    ``real_nodes`` also ``user-apiserver-kubelet`` (its client certificate
    towards kubelets).
    """
    args = [
        str(bin_dir / KUBE_APISERVER),
        f"--etcd-servers={etcd_url}",
        f"--bind-address={address}",
        f"--advertise-address={address}",
        f"--secure-port={port}",
        f"--tls-cert-file={pki_dir / 'serving.crt'}",
        f"--tls-private-key-file={pki_dir / 'serving.key'}",
        f"--client-ca-file={pki_dir / 'ca.crt'}",
        f"--cert-dir={pki_dir}",
        f"--service-cluster-ip-range={service_cidr}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki_dir / 'sa.pub'}",
        f"--service-account-signing-key-file={pki_dir / 'sa.key'}",
        "--allow-privileged=true",
    ]
    if real_nodes:
        return [
            *args,
            # Node: kubelets see only their own Node's Pods, Secrets, ...
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--kubelet-client-certificate={pki_dir / 'user-apiserver-kubelet.crt'}",
            f"--kubelet-client-key={pki_dir / 'user-apiserver-kubelet.key'}",
            "--kubelet-preferred-address-types=InternalIP",
        ]
    return [
        *args,
        "--authorization-mode=RBAC",
        # ServiceAccount: Pods would wait for tokens no kubelet mounts.
        # TaintNodesByCondition: new Nodes start tainted not-ready and only
        # the node lifecycle controller (off, see below) lifts that.
        "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
        # v1.37 refuses a loopback advertise address when it maintains the
        # `kubernetes` Service endpoints; nothing here needs them.
        "--endpoint-reconciler-type=none",
    ]


def _controller_common(kubeconfig: Path, secure_port: int) -> list[str]:
    # Their own secure ports serve only /healthz here; authn/authz go
    # through the API server like in a cluster.
    kc = str(kubeconfig)
    return [
        f"--kubeconfig={kc}",
        f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        f"--secure-port={secure_port}",
    ]


def controller_manager_args(
    kubeconfig: Path, secure_port: int, pki_dir: Path, *, real_nodes: bool
) -> list[str]:
    """kube-controller-manager's flags (without the binary)."""
    return [
        *_controller_common(kubeconfig, secure_port),
        f"--service-account-private-key-file={pki_dir / 'sa.key'}",
        f"--root-ca-file={pki_dir / 'ca.crt'}",
        "--use-service-account-credentials=false",
        # No cloud hands out Pod CIDRs: a real node's CNI gets its range from
        # its own config. kwok renews no kubelet heartbeats the lifecycle
        # controller would accept forever; a real kubelet does.
        "--controllers=*,-node-ipam-controller"
        if real_nodes
        else "--controllers=*,-node-lifecycle-controller,-node-ipam-controller",
    ]


def scheduler_args(kubeconfig: Path, secure_port: int) -> list[str]:
    """kube-scheduler's flags (without the binary)."""
    return _controller_common(kubeconfig, secure_port)


def wait_http(
    url: str,
    *,
    ssl_ctx: ssl.SSLContext | None,
    timeout_s: float,
    what: str,
    exited: Callable[[], int | None] = lambda: None,
    log_tail: Callable[[], str] = lambda: "",
) -> None:
    """Poll ``url`` until it answers 200; raise :class:`KubeAPIError` with ``log_tail()``
    if ``exited()`` returns an exit code or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        code = exited()
        if code is not None:
            raise KubeAPIError(f"{what} exited with {code}: {log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=5, context=ssl_ctx) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError) as e:
            last = str(e)
        time.sleep(0.25)
    raise KubeAPIError(f"{what} not ready after {timeout_s}s ({last}): {log_tail()}")


# --- processes ----------------------------------------------------------------


def _die_with_parent() -> None:
    # Linux only: if pytest is killed hard, the kernel sends SIGTERM to the
    # servers instead of leaving them running with their ports bound.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _stop(proc: subprocess.Popen[bytes] | None, grace_s: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace_s)


def kubeconfig_yaml(server: str, ca: Path, crt: Path, key: Path, user: str) -> str:
    # Written by hand (not with a YAML library) so the launcher needs only
    # `cryptography`; every value is a plain path or URL.
    return f"""apiVersion: v1
kind: Config
clusters:
- name: devstack
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: {user}
  user:
    client-certificate: {crt}
    client-key: {key}
contexts:
- name: {user}@devstack
  context:
    cluster: devstack
    user: {user}
    namespace: default
current-context: {user}@devstack
"""


@dataclass
class KubeAPIServer:
    """etcd + kube-apiserver on 127.0.0.1, started by :meth:`start`.

    Attributes filled by :meth:`start`: ``url`` (https://127.0.0.1:PORT),
    ``kubeconfig`` (admin, ``system:masters``) and ``ca_file``.
    """

    bin_dir: Path = field(default_factory=cache_bin_dir)
    ready_timeout_s: float = 120.0
    """etcd + API server start takes ~5-15 s here; generous for a loaded CI box."""
    extra_apiserver_args: tuple[str, ...] = ()
    workloads: bool = False
    """Also run kube-controller-manager, kube-scheduler and kwok with
    ``fake_nodes`` kwok-played Nodes, so Deployments get (fake) running Pods."""
    fake_nodes: int = 1

    url: str = ""
    kubeconfig: Path = Path()
    ca_file: Path = Path()
    workdir: Path = Path()
    _etcd: subprocess.Popen[bytes] | None = None
    _apiserver: subprocess.Popen[bytes] | None = None
    _controllers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _ca: KeyCert | None = None
    _logs: list[IO[bytes]] = field(default_factory=list)
    _own_workdir: bool = False

    def start(self) -> Self:
        if self._apiserver is not None:
            return self
        if not binaries_present(self.bin_dir):
            raise KubeAPIError(
                f"etcd/kube-apiserver missing in {self.bin_dir}; run tools/k8s/build.sh"
            )
        self.workdir = Path(tempfile.mkdtemp(prefix="ticklake-kubeapi-"))
        self._own_workdir = True
        try:
            self._start_etcd()
            self._start_apiserver()
            self._wait_ready()
            if self.workloads:
                self._start_workload_controllers()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the controllers, the API server, then etcd; remove the work dir. Idempotent."""
        for proc in reversed(self._controllers):
            _stop(proc)
        self._controllers.clear()
        _stop(self._apiserver)
        _stop(self._etcd)
        self._apiserver = self._etcd = None
        for f in self._logs:
            f.close()
        self._logs.clear()
        if (
            self._own_workdir
            and self.workdir.exists()
            and not os.environ.get("TICKLAKE_KEEP_KUBEAPI")
        ):
            shutil.rmtree(self.workdir, ignore_errors=True)
            self._own_workdir = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _log(self, name: str) -> IO[bytes]:
        f = (self.workdir / f"{name}.log").open("wb")
        self._logs.append(f)
        return f

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self._etcd_url = f"http://127.0.0.1:{client}"
        args = etcd_args(
            self.bin_dir, self.workdir / "etcd", self._etcd_url, f"http://127.0.0.1:{peer}"
        )
        self._etcd = subprocess.Popen(
            args, stdout=self._log("etcd"), stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
        self._wait_http(f"{self._etcd_url}/health", ssl_ctx=None, proc=self._etcd, what="etcd")

    def _start_apiserver(self) -> None:
        d = self.workdir / "pki"
        d.mkdir()
        self._ca = make_ca()
        self.ca_file, _ = self._ca.write(d, "ca")
        issue_cert(self._ca, "kube-apiserver", server=True).write(d, "serving")
        write_service_account_keys(d)
        port = free_port()
        self.url = f"https://127.0.0.1:{port}"
        args = apiserver_args(
            self.bin_dir,
            etcd_url=self._etcd_url,
            address="127.0.0.1",
            port=port,
            pki_dir=d,
            service_cidr="10.0.0.0/24",
            real_nodes=False,
        )
        self._apiserver = subprocess.Popen(
            [*args, *self.extra_apiserver_args],
            stdout=self._log("kube-apiserver"),
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        self.kubeconfig = self.user_kubeconfig("admin", groups=("system:masters",))

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [str(self.bin_dir / name), *args],
            stdout=self._log(name),
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        self._controllers.append(proc)
        return proc

    def _start_workload_controllers(self) -> None:
        cm_port, sched_port = free_port(), free_port()
        cm = self._spawn(
            CONTROLLER_MANAGER,
            controller_manager_args(
                self.kubeconfig, cm_port, self.workdir / "pki", real_nodes=False
            ),
        )
        sched = self._spawn(SCHEDULER, scheduler_args(self.kubeconfig, sched_port))
        stages = self.workdir / "kwok-stages.yaml"
        stages.write_text(KWOK_STAGES)
        kwok = self._spawn(
            KWOK,
            [
                f"--kubeconfig={self.kubeconfig}",
                f"--config={stages}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-label-selector={FAKE_NODE_LABEL[0]}={FAKE_NODE_LABEL[1]}",
                f"--server-address=127.0.0.1:{free_port()}",
                # Reported in Node/Pod status only; nothing connects to them.
                "--node-ip=127.0.0.1",
                "--cidr=10.244.0.0/16",
            ],
        )
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # their self-signed loopback serving certs
        self._wait_http(
            f"https://127.0.0.1:{cm_port}/healthz",
            ssl_ctx=insecure,
            proc=cm,
            what=CONTROLLER_MANAGER,
        )
        self._wait_http(
            f"https://127.0.0.1:{sched_port}/healthz", ssl_ctx=insecure, proc=sched, what=SCHEDULER
        )
        for i in range(self.fake_nodes):
            self._api_post(
                "/api/v1/nodes",
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": f"kwok-node-{i}", "labels": dict([FAKE_NODE_LABEL])},
                },
            )
        deadline = time.monotonic() + self.ready_timeout_s
        while not self._nodes_ready():
            if kwok.poll() is not None:
                raise KubeAPIError(f"kwok exited with {kwok.returncode}: {self._tail(KWOK)}")
            if time.monotonic() > deadline:
                raise KubeAPIError(f"fake nodes not Ready: {self._tail(KWOK)}")
            time.sleep(0.25)

    def _api_post(self, path: str, body: dict[str, object]) -> None:
        req = urllib.request.Request(
            f"{self.url}{path}",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10, context=self.ssl_context()):
            pass

    def _nodes_ready(self) -> bool:
        with urllib.request.urlopen(
            f"{self.url}/api/v1/nodes", timeout=10, context=self.ssl_context()
        ) as r:
            nodes = json.load(r)["items"]
        ready = [
            n
            for n in nodes
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (n.get("status") or {}).get("conditions") or []
            )
        ]
        return len(ready) >= self.fake_nodes

    def user_kubeconfig(self, user: str, groups: tuple[str, ...] = ()) -> Path:
        """A kubeconfig for ``user`` (client certificate; groups from its O=)."""
        if self._ca is None:
            raise KubeAPIError("start() the server first")
        d = self.workdir / "pki"
        crt, key = issue_cert(self._ca, user, orgs=groups, server=False).write(d, f"user-{user}")
        path = self.workdir / f"kubeconfig-{user}.yaml"
        path.write_text(kubeconfig_yaml(self.url, self.ca_file, crt, key, user))
        return path

    def ssl_context(self) -> ssl.SSLContext:
        """An admin TLS context (trusts the CA, presents the admin cert)."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        d = self.workdir / "pki"
        ctx.load_cert_chain(str(d / "user-admin.crt"), str(d / "user-admin.key"))
        return ctx

    def _wait_ready(self) -> None:
        self._wait_http(
            f"{self.url}/readyz",
            ssl_ctx=self.ssl_context(),
            proc=self._apiserver,
            what="kube-apiserver",
        )

    def _wait_http(
        self,
        url: str,
        *,
        ssl_ctx: ssl.SSLContext | None,
        proc: subprocess.Popen[bytes] | None,
        what: str,
    ) -> None:
        wait_http(
            url,
            ssl_ctx=ssl_ctx,
            timeout_s=self.ready_timeout_s,
            what=what,
            exited=(lambda: proc.poll()) if proc is not None else (lambda: None),
            log_tail=lambda: self._tail(what),
        )

    def _tail(self, what: str) -> str:
        log = self.workdir / f"{what}.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""
