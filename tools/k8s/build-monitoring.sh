#!/usr/bin/env bash
# Build prometheus-operator and its config reloader from the Go module proxy
# into ${TICKLAKE_CACHE:-~/.cache/ticklake}/bin, and record where the module's
# CRD YAMLs are (bin/prometheus-operator-v<version>-crds.path), so the cluster
# monitoring test runs the real operator against our ServiceMonitors and
# PrometheusRule.
#
# The version is the one whose CRD schemas sit in ../shared/k8s-crds
# (prometheus-operator-v0.93.0). Prometheus itself is built from the Go proxy
# too (PROMETHEUS_MODULE_VERSION v0.313.1 is Prometheus 3.13.1, the newest the
# operator lists as compatible): Debian's 2.42 package is built without the
# Kubernetes service discovery, so it cannot read the configuration the
# operator writes ("field kubernetes_sd_configs not found"). Only the
# Kubernetes discovery is compiled in (build tags), and no web UI assets: the
# tests use the HTTP API. Installed as bin/prometheus-kubernetes, so it never
# shadows Debian's prometheus that `make run` uses.
#
# Why a wrapper module: the operator's go.mod replaces its two API submodules
# with ./pkg/...; those replaces are ignored for a dependency, so the wrapper
# resolves the published submodules of the same tag instead (same code).
#
# Idempotent: a binary whose .version file names the wanted version is kept.
# Prints nothing on stdout; build times go to stderr and to bin/<name>.buildtime.
set -euo pipefail

CACHE="${TICKLAKE_CACHE:-$HOME/.cache/ticklake}"
BIN="$CACHE/bin"
WORK="$CACHE/build"
PROM_OPERATOR_VERSION="${PROM_OPERATOR_VERSION:-v0.93.0}"
MODULE=github.com/prometheus-operator/prometheus-operator
PROMETHEUS_MODULE_VERSION="${PROMETHEUS_MODULE_VERSION:-v0.313.1}"
mkdir -p "$BIN" "$WORK"

export GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0

log() { printf '[build-monitoring.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

present() { [ -x "$BIN/$1" ] && [ "$(cat "$BIN/$1.version" 2>/dev/null)" = "$PROM_OPERATOR_VERSION" ]; }

# The operator reports this version in its logs and labels, and derives its
# default reloader image from it (the test always passes its own image).
ldflags() {
  local pkg=github.com/prometheus/common/version
  echo "-s -w -X $pkg.Version=${PROM_OPERATOR_VERSION#v} -X $pkg.Branch=HEAD" \
    "-X $pkg.Revision=$1 -X $pkg.BuildUser=ticklake -X $pkg.BuildDate=$(date -u +%Y%m%d-%H:%M:%S)"
}

build() {
  local dir="$WORK/prometheus-operator-$PROM_OPERATOR_VERSION" name pkg start revision
  mkdir -p "$dir"; cd "$dir"
  if [ ! -s go.mod ] || ! grep -q "$MODULE $PROM_OPERATOR_VERSION" go.mod; then
    log "prometheus-operator $PROM_OPERATOR_VERSION: fetching $MODULE"
    go mod download -json "$MODULE@$PROM_OPERATOR_VERSION" > download.json
    printf 'module ticklake.dev/tools/prometheus-operator-build\n\ngo %s\n\nrequire %s %s\n' \
      "$(sed -nE 's/^go ([0-9.]+)$/\1/p' "$(sed -nE 's/^[[:space:]]*"GoMod": "(.*)",?$/\1/p' download.json)" | head -1)" \
      "$MODULE" "$PROM_OPERATOR_VERSION" > go.mod
  fi
  revision="$(sed -nE 's/^[[:space:]]*"Hash": "(.*)",?$/\1/p' download.json | head -1)"
  for name in operator prometheus-config-reloader; do
    [ "$name" = operator ] && out=prometheus-operator || out="$name"
    if present "$out"; then log "$out $PROM_OPERATOR_VERSION present: $BIN/$out"; continue; fi
    pkg="$MODULE/cmd/$name"
    start=$SECONDS
    go get "$pkg@$PROM_OPERATOR_VERSION" >&2
    log "$out $PROM_OPERATOR_VERSION: go build"
    go build -trimpath -ldflags "$(ldflags "${revision:-unknown}")" -o "$BIN/$out.tmp" "$pkg"
    mv "$BIN/$out.tmp" "$BIN/$out"
    echo "$PROM_OPERATOR_VERSION" > "$BIN/$out.version"
    echo "$((SECONDS - start))" > "$BIN/$out.buildtime"
    log "$out $PROM_OPERATOR_VERSION built in $((SECONDS - start))s"
  done
  local crds
  crds="$(sed -nE 's/^[[:space:]]*"Dir": "(.*)",?$/\1/p' download.json)/example/prometheus-operator-crd"
  [ -d "$crds" ] || { log "no CRDs at $crds"; return 1; }
  echo "$crds" > "$BIN/prometheus-operator-$PROM_OPERATOR_VERSION-crds.path"
}

# Prometheus and its promtool (which checks the operator's configuration),
# each only with the Kubernetes discovery compiled in.
build_prometheus() {
  local v="$PROMETHEUS_MODULE_VERSION" dir start release cmd out
  # Module v0.3MM.P is Prometheus v3.MM.P.
  release="${v#v0.3}"; release="3.$((10#${release%%.*})).${v##*.}"
  dir="$WORK/prometheus-$v"
  mkdir -p "$dir"; cd "$dir"
  [ -s go.mod ] || printf 'module ticklake.dev/tools/prometheus-build\n\ngo 1.25.0\n' > go.mod
  local pkg=github.com/prometheus/common/version
  for cmd in prometheus promtool; do
    out="$cmd-kubernetes"
    if [ -x "$BIN/$out" ] && [ "$(cat "$BIN/$out.version" 2>/dev/null)" = "$v" ]; then
      log "$out $v present: $BIN/$out"; continue
    fi
    start=$SECONDS
    go get "github.com/prometheus/prometheus/cmd/$cmd@$v" >&2
    log "$out $v (Prometheus $release): go build"
    go build -trimpath -tags remove_all_sd,enable_kubernetes_sd \
      -ldflags "-s -w -X $pkg.Version=$release -X $pkg.Branch=HEAD -X $pkg.BuildUser=ticklake" \
      -o "$BIN/$out.tmp" "github.com/prometheus/prometheus/cmd/$cmd"
    mv "$BIN/$out.tmp" "$BIN/$out"
    echo "$v" > "$BIN/$out.version"
    echo "$((SECONDS - start))" > "$BIN/$out.buildtime"
    log "$out $v built in $((SECONDS - start))s"
  done
}

# One Go build at a time in the shared cache (each already uses every core).
exec 9> "$CACHE/build.lock"
flock 9
build
build_prometheus
