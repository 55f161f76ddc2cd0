#!/usr/bin/env bash
# Installs everything ticklake needs on a fresh Debian machine, idempotently:
#   tools/bootstrap.sh          what `make run` needs (system packages, uv, the workspace)
#   tools/bootstrap.sh --test   plus the test tools (helm, kube-apiserver, etcd, chromium, podman, Spark)
#   tools/bootstrap.sh --images what `make images` needs (podman, mmdebstrap)
# Downloads and builds are cached outside the repository in ${TICKLAKE_CACHE:-~/.cache/ticklake}.
set -euo pipefail
cd "$(dirname "$0")/.."

want_test_tools=0
want_images=0
[[ "${1:-}" == "--test" ]] && want_test_tools=1 && want_images=1
[[ "${1:-}" == "--images" ]] && want_images=1

say() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*" >&2; }

# --- system packages (Debian) -------------------------------------------------
# redis-server: the hot cache; prometheus: local scraping and promtool for rules;
packages=(redis-server prometheus)
# chromium: the live page's browser test. The rest: the real one-node cluster
# of tests/cluster (docs/testing.md): its container runtime, CNI plugins and
# the tools the kubelet, kube-proxy and the fixture run.
((want_test_tools)) && packages+=(chromium containerd runc containernetworking-plugins
  iptables conntrack iproute2 util-linux mount)
# podman, runc, mmdebstrap: the container images (docs/images.md); slirp4netns
# publishes their ports on loopback in the image tests.
((want_images)) && packages+=(podman runc mmdebstrap slirp4netns)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "missing Debian packages: ${missing[*]}; run: sudo apt-get install ${missing[*]}"
    exit 1
  fi
fi
for tool in java mvn; do
  command -v "$tool" >/dev/null || { say "$tool is required (Java 17 and Maven run the Kafka broker)"; exit 1; }
done

# --- Python: uv and the workspace --------------------------------------------
if ! command -v uv >/dev/null; then
  say "installing uv from PyPI"
  python3 -m pip install --quiet uv
fi
say "syncing the uv workspace (locked)"
uv sync --all-packages --frozen --quiet

# --- Kafka jars (Maven Central, cached) --------------------------------------
uv run --frozen python -c "from ticklake.devstack.kafka import kafka_libs; kafka_libs()"

# --- test tools (Go module proxy builds, cached) ------------------------------
if ((want_test_tools)); then
  for script in tools/helm/install.sh tools/k8s/build.sh tools/install-browser.sh tools/spark/install.sh; do
    if [[ -x "$script" || -f "$script" ]]; then
      say "running $script"
      bash "$script"
    fi
  done
fi
say "ready"
