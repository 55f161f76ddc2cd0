#!/usr/bin/env bash
# Build the chart tooling from the Go module proxy into a cache outside the
# repository: helm (lint/template), kube-linter (security scan of rendered
# manifests) and kind (its config loader validates kind-config.yaml).
#
# Why build instead of download: the only reachable sources are the package
# registries, and the Go module proxy serves all three as modules.
#
# Idempotent: a binary already in the cache with the wanted version is kept.
# Usage: tools/helm/install.sh [helm|kube-linter|kind ...]   (default: all)
set -euo pipefail

CACHE="${TICKLAKE_CACHE:-$HOME/.cache/ticklake}"
BIN="$CACHE/bin"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
KUBE_LINTER_VERSION="${KUBE_LINTER_VERSION:-v0.7.6}"
KIND_VERSION="${KIND_VERSION:-v0.33.0}"
PROM_OPERATOR_VERSION="${PROM_OPERATOR_VERSION:-v0.85.0}"
mkdir -p "$BIN"

export GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 GOBIN="$BIN"

log() { printf '[helm/install.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# go install NAME PKG@VERSION, skipped when $BIN/NAME.version already says VERSION.
install_tool() {
  local name="$1" pkg="$2" version="$3" start=$SECONDS
  if [ -x "$BIN/$name" ] && [ "$(cat "$BIN/$name.version" 2>/dev/null)" = "$version" ]; then
    log "$name $version present: $BIN/$name"
    return 0
  fi
  log "$name $version: go install $pkg@$version"
  go install -trimpath -ldflags "-s -w" "$pkg@$version"
  echo "$version" > "$BIN/$name.version"
  log "$name $version built in $((SECONDS - start))s"
}

# The prometheus-operator module carries the CRD YAMLs the chart's
# ServiceMonitor and PrometheusRule are validated against; print their folder.
prometheus_operator_crds() {
  local dir
  dir="$(go mod download -json "github.com/prometheus-operator/prometheus-operator@$PROM_OPERATOR_VERSION" \
    | sed -nE 's/^[[:space:]]*"Dir": "(.*)",?$/\1/p')"
  [ -d "$dir/example/prometheus-operator-crd" ] || { log "no CRDs in $dir"; return 1; }
  echo "$dir/example/prometheus-operator-crd" > "$BIN/prometheus-operator-crds.path"
  log "prometheus-operator CRDs: $dir/example/prometheus-operator-crd"
}

# One build at a time: each go build already uses every core.
exec 9> "$CACHE/helm-tools.lock"
flock 9

tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=(helm kube-linter kind prometheus-operator-crds)
for tool in "${tools[@]}"; do
  case "$tool" in
    helm) install_tool helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" ;;
    kube-linter) install_tool kube-linter golang.stackrox.io/kube-linter/cmd/kube-linter "$KUBE_LINTER_VERSION" ;;
    kind) install_tool kind sigs.k8s.io/kind "$KIND_VERSION" ;;
    prometheus-operator-crds) prometheus_operator_crds ;;
    *) log "unknown tool $tool"; exit 2 ;;
  esac
done
