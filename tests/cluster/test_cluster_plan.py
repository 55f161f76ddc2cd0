"""The cluster's pure parts: the network plan's clash check, the rendered node
configuration, mount discovery and the scratch image archive. No root needed."""

from __future__ import annotations

import ipaddress
import json
import tarfile
import tomllib
from pathlib import Path

from ticklake.devstack.cluster import config, host, scratch_image
from ticklake.devstack.cluster.layout import ClusterLayout, NetworkPlan, find_clashes

PLAN = NetworkPlan()
N = ipaddress.IPv4Network


def _clashes(**kw: object) -> list[str]:
    facts: dict[str, object] = {
        "addresses": [("eth0", N("192.0.2.0/24")), ("lo", N("127.0.0.0/8"))],
        "routes": [N("192.0.2.0/24")],
        "links": ["lo", "eth0"],
        "netns": [],
        "ports_in_use": [],
    }
    facts.update(kw)
    return find_clashes(PLAN, **facts)  # type: ignore[arg-type]


def test_a_host_without_our_names_and_ranges_is_clear() -> None:
    assert _clashes() == []


def test_a_default_route_does_not_count_as_a_clash() -> None:
    assert _clashes(routes=[N("0.0.0.0/0")]) == []


def test_every_kind_of_clash_is_named() -> None:
    found = _clashes(
        addresses=[("wg0", N("10.250.0.0/16"))],
        routes=[N("10.250.96.128/25")],
        links=["tl-host0"],
        netns=["ticklake-node"],
        ports_in_use=[16443],
    )
    text = "\n".join(found)
    # A /16 address overlaps all three of our ranges.
    assert text.count("on wg0 overlaps") == 3
    assert "route to 10.250.96.128/25 overlaps 10.250.96.0/24" in text
    assert "interface tl-host0 exists" in text
    assert "namespace ticklake-node exists" in text
    assert "port 16443 is in use" in text


def test_plan_addresses_are_inside_their_ranges_and_distinct() -> None:
    assert PLAN.host_ip in PLAN.link and PLAN.node_ip in PLAN.link
    assert PLAN.host_ip != PLAN.node_ip
    assert PLAN.dns_ip in PLAN.services and PLAN.kubernetes_service_ip in PLAN.services
    assert PLAN.bridge_ip in PLAN.pods
    ranges = PLAN.ranges
    assert not any(a.overlaps(b) for i, a in enumerate(ranges) for b in ranges[i + 1 :])


def test_containerd_config_has_the_settings_this_host_needs(tmp_path: Path) -> None:
    layout = ClusterLayout(tmp_path)
    conf = tomllib.loads(config.containerd_toml(layout, "ticklake.dev/pause:abc"))
    cri = conf["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["sandbox_image"] == "ticklake.dev/pause:abc"
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    # Nothing under the host's default containerd paths.
    for path in (conf["root"], conf["state"], conf["grpc"]["address"]):
        assert Path(path).is_relative_to(tmp_path)
    assert cri["cni"]["conf_dir"] == str(layout.cni_conf_dir)


def test_kubelet_and_kube_proxy_configs(tmp_path: Path) -> None:
    layout = ClusterLayout(tmp_path)
    kubelet = json.loads(config.kubelet_config(layout, PLAN))
    assert kubelet["cgroupDriver"] == "cgroupfs"
    assert kubelet["failCgroupV1"] is False
    assert kubelet["clusterDNS"] == [str(PLAN.dns_ip)]
    assert kubelet["address"] == str(PLAN.node_ip)
    assert kubelet["authentication"]["anonymous"]["enabled"] is False
    proxy = json.loads(config.kube_proxy_config(layout, PLAN))
    assert proxy["mode"] == "iptables"
    assert proxy["conntrack"]["maxPerCore"] == 0 and proxy["conntrack"]["min"] == 0
    assert proxy["clusterCIDR"] == str(PLAN.pods)


def test_cni_uses_the_pod_range_and_our_own_ipam_dir(tmp_path: Path) -> None:
    layout = ClusterLayout(tmp_path)
    conf = json.loads(config.cni_conflist(layout, PLAN))
    bridge = conf["plugins"][0]
    assert bridge["bridge"] == PLAN.bridge
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.250.64.0/24", "gateway": "10.250.64.1"}]]
    assert Path(bridge["ipam"]["dataDir"]).is_relative_to(tmp_path)


def test_coredns_asks_nobody_outside_the_cluster() -> None:
    corefile = config.corefile()
    assert "forward" not in corefile and "loop" not in corefile
    assert "kubernetes cluster.local" in corefile
    objs = config.coredns_manifests(PLAN, "ticklake.dev/coredns:x")
    service = next(o for o in objs if o["kind"] == "Service")
    assert service["spec"]["clusterIP"] == str(PLAN.dns_ip)
    deployment = next(o for o in objs if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["imagePullPolicy"] == "Never"


def test_egress_rules_admit_only_the_api_server() -> None:
    rules = [" ".join(r) for r in config.node_egress_rules(PLAN)]
    accept = [r for r in rules if "RETURN" in r]
    assert accept == [
        f"iptables -w -A TICKLAKE-EGRESS -d {PLAN.host_ip} -p tcp --dport 16443 -j RETURN"
    ]
    assert rules[-1] == "iptables -w -I FORWARD 1 -o tl-node0 -j TICKLAKE-EGRESS"
    assert "iptables -w -A TICKLAKE-EGRESS -j DROP" in rules


MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
101 22 0:50 / /c/run/kubelet/pods/a/volumes/kubernetes.io~projected/x rw - tmpfs tmpfs rw
102 22 0:51 / /c/run/containerd/k8s.io/b/rootfs rw - overlay overlay rw
103 22 0:52 / /c/run/with\\040space rw - tmpfs tmpfs rw
104 22 0:53 / /c/running rw - tmpfs tmpfs rw
"""


def test_mounts_under_a_root_deepest_first_and_not_its_namesakes() -> None:
    found = host.mounts_under(Path("/c/run"), MOUNTINFO)
    assert found == [
        Path("/c/run/kubelet/pods/a/volumes/kubernetes.io~projected/x"),
        Path("/c/run/containerd/k8s.io/b/rootfs"),
        Path("/c/run/with space"),
    ]


def test_scratch_archive_is_reproducible_and_readable(tmp_path: Path) -> None:
    binary = tmp_path / "tool"
    binary.write_bytes(b"\x7fELF not really")
    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    digest_a = scratch_image.write_scratch_archive(a, "x.dev/tool:1", binary, path_in_image="/tool")
    digest_b = scratch_image.write_scratch_archive(b, "x.dev/tool:1", binary, path_in_image="/tool")
    assert digest_a == digest_b == scratch_image.archive_config_digest(a)
    assert a.read_bytes() == b.read_bytes()
    with tarfile.open(a) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert manifest[0]["RepoTags"] == ["x.dev/tool:1"]
        layer = tar.extractfile(manifest[0]["Layers"][0])
        assert layer is not None
        with tarfile.open(fileobj=layer) as inner:
            member = inner.getmember("tool")
            assert member.mode == 0o755
            assert inner.extractfile(member).read() == binary.read_bytes()  # type: ignore[union-attr]
    binary.write_bytes(b"\x7fELF changed")
    changed = scratch_image.write_scratch_archive(a, "x.dev/tool:1", binary, path_in_image="/tool")
    assert changed != digest_a
