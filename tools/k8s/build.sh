#!/usr/bin/env bash
# Build kube-apiserver (and, for fake Pods, kube-controller-manager,
# kube-scheduler and kwok) plus etcd from the Go module proxy into a cache
# outside the repository, so the operator tests run against a real API server.
# For the real one-node cluster (`ticklake-stack cluster up`, docs/testing.md)
# it also builds kubelet, kube-proxy, kubectl, CoreDNS and our pod sandbox
# ("pause") program from tools/k8s/pause.
#
# Why build instead of download: the only reachable sources are the package
# registries; the Go module proxy serves Kubernetes, etcd and kwok as modules.
#
# Idempotent: a binary that already exists is not rebuilt. Versions can be
# overridden with KUBE_VERSIONS / ETCD_VERSIONS / KWOK_VERSIONS (space
# separated, tried in order until one builds; docs/operator.md records which
# failed and why). K8S_COMPONENTS picks the Kubernetes binaries; WANT_NODE=0
# skips CoreDNS and pause (COREDNS_VERSIONS picks CoreDNS).
set -euo pipefail

CACHE="${TICKLAKE_CACHE:-$HOME/.cache/ticklake}"
BIN="$CACHE/bin"
WORK="$CACHE/build"
KUBE_VERSIONS="${KUBE_VERSIONS:-v1.36.3 v1.36.1 v1.37.2}"
ETCD_VERSIONS="${ETCD_VERSIONS:-v3.6.16 v3.6.15 v3.6.14}"
KWOK_VERSIONS="${KWOK_VERSIONS:-v0.8.0 v0.7.0}"
COREDNS_VERSIONS="${COREDNS_VERSIONS:-v1.15.0 v1.14.7}"
K8S_COMPONENTS="${K8S_COMPONENTS:-kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl}"
WANT_KWOK="${WANT_KWOK:-1}"
WANT_NODE="${WANT_NODE:-1}"
PAUSE_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/pause"
mkdir -p "$BIN" "$WORK"

# A wrapper module must not pick up a go.work or vendor dir from elsewhere.
export GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0

log() { printf '[build.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

missing_components() {
  local c out=""
  for c in $K8S_COMPONENTS; do [ -x "$BIN/$c" ] || out+="$c "; done
  echo "$out"
}

# Every staging module that k8s.io/kubernetes replaces with ./staging/src/...
# in its own go.mod; those replace lines are ignored when kubernetes is a
# dependency, so the wrapper must repeat them with published v0.X.Y versions.
staging_modules() {
  local modfile="$1"
  sed -nE 's#^[[:space:]]*(replace[[:space:]]+)?(k8s\.io/[^[:space:]]+)[[:space:]]+=>[[:space:]]+\./staging/src/.*#\2#p' "$modfile" | sort -u
}

build_kube() {
  local kv="$1" sv dir modfile commit c
  sv="v0.${kv#v1.}"
  dir="$WORK/kubernetes-$kv"
  mkdir -p "$dir"; cd "$dir"
  if [ ! -s go.mod ] || ! grep -q "k8s.io/kubernetes $kv" go.mod; then
    log "kubernetes $kv: fetching k8s.io/kubernetes module"
    go mod download -json "k8s.io/kubernetes@$kv" > download.json
    modfile="$(sed -nE 's/^[[:space:]]*"GoMod": "(.*)",?$/\1/p' download.json)"
    [ -s "$modfile" ] || { log "no go.mod for k8s.io/kubernetes@$kv"; return 1; }
    {
      echo "module ticklake.dev/tools/kubernetes-build"
      echo
      sed -nE 's/^go ([0-9.]+)$/go \1/p' "$modfile" | head -1
      echo
      echo "require k8s.io/kubernetes $kv"
      echo
      echo "replace ("
      staging_modules "$modfile" | while read -r m; do echo "	$m => $m $sv"; done
      echo ")"
    } > go.mod
    log "kubernetes $kv: $(grep -c '=>' go.mod) staging replaces (-> $sv)"
  fi
  commit="$(sed -nE 's/^[[:space:]]*"Hash": "(.*)",?$/\1/p' download.json | head -1)"
  local minor="${kv#v1.}"; minor="${minor%%.*}"
  local ld="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$kv -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit=${commit:-unknown}"
    ld+=" -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  done
  for c in $(missing_components); do
    go get "k8s.io/kubernetes/cmd/$c@$kv"
    log "$c $kv: go build"
    go build -trimpath -ldflags "$ld" -o "$BIN/$c.tmp" "k8s.io/kubernetes/cmd/$c"
    mv "$BIN/$c.tmp" "$BIN/$c"
    echo "$kv" > "$BIN/$c.version"
  done
}

build_etcd() {
  local ev="$1" dir
  dir="$WORK/etcd-$ev"
  rm -rf "$dir"; mkdir -p "$dir"; cd "$dir"
  printf 'module ticklake.dev/tools/etcd-build\n\ngo 1.24\n' > go.mod
  log "etcd $ev: go get"
  go get "go.etcd.io/etcd/server/v3@$ev"
  log "etcd $ev: go build"
  go build -trimpath -ldflags "-s -w" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$BIN/etcd.tmp" "$BIN/etcd"
}

build_kwok() {
  local v="$1" dir
  dir="$WORK/kwok-$v"
  rm -rf "$dir"; mkdir -p "$dir"; cd "$dir"
  printf 'module ticklake.dev/tools/kwok-build\n\ngo 1.24\n' > go.mod
  log "kwok $v: go get"
  go get "sigs.k8s.io/kwok/cmd/kwok@$v"
  log "kwok $v: go build"
  go build -trimpath -ldflags "-s -w" \
    -o "$BIN/kwok.tmp" sigs.k8s.io/kwok/cmd/kwok
  mv "$BIN/kwok.tmp" "$BIN/kwok"
}

build_coredns() {
  local v="$1" dir
  dir="$WORK/coredns-$v"
  rm -rf "$dir"; mkdir -p "$dir"; cd "$dir"
  printf 'module ticklake.dev/tools/coredns-build\n\ngo 1.24\n' > go.mod
  log "coredns $v: go get"
  go get "github.com/coredns/coredns@$v"
  log "coredns $v: go build"
  # Static, so the image can be FROM scratch.
  go build -trimpath -ldflags "-s -w" -o "$BIN/coredns.tmp" github.com/coredns/coredns
  mv "$BIN/coredns.tmp" "$BIN/coredns"
}

# Our sandbox program: rebuilt when its source changes (the version file holds
# the source's hash).
pause_source_hash() { cat "$PAUSE_SRC/go.mod" "$PAUSE_SRC/main.go" | sha256sum | cut -c1-16; }

build_pause() {
  cd "$PAUSE_SRC"
  go build -trimpath -ldflags "-s -w" -o "$BIN/pause.tmp" .
  mv "$BIN/pause.tmp" "$BIN/pause"
  pause_source_hash > "$BIN/pause.version"
}

try_versions() {
  local name="$1" fn="$2"; shift 2
  local v start
  for v in "$@"; do
    start=$SECONDS
    if ( "$fn" "$v" ) > "$WORK/$name-$v.log" 2>&1; then
      log "$name $v built in $((SECONDS - start))s"
      echo "$v" > "$BIN/$name.version"
      return 0
    fi
    log "$name $v FAILED after $((SECONDS - start))s; last lines of $WORK/$name-$v.log:"
    tail -n 15 "$WORK/$name-$v.log" >&2
  done
  return 1
}

# One build at a time on purpose: each go build already uses every core, and
# two parallel kube-apiserver links would need far more memory.
exec 9> "$CACHE/build.lock"
flock 9

if [ ! -x "$BIN/etcd" ]; then
  # shellcheck disable=SC2086
  try_versions etcd build_etcd $ETCD_VERSIONS
else
  log "etcd present: $BIN/etcd"
fi
if [ -n "$(missing_components)" ]; then
  # The components must share one version: reuse the API server's if built.
  versions="$KUBE_VERSIONS"
  [ -s "$BIN/kube-apiserver.version" ] && versions="$(cat "$BIN/kube-apiserver.version")"
  # shellcheck disable=SC2086
  try_versions kubernetes build_kube $versions
else
  log "present: $K8S_COMPONENTS"
fi
if [ "$WANT_KWOK" = 1 ] && [ ! -x "$BIN/kwok" ]; then
  # shellcheck disable=SC2086
  try_versions kwok build_kwok $KWOK_VERSIONS
fi
if [ "$WANT_NODE" = 1 ]; then
  if [ ! -x "$BIN/coredns" ]; then
    # shellcheck disable=SC2086
    try_versions coredns build_coredns $COREDNS_VERSIONS
  fi
  if [ ! -x "$BIN/pause" ] || [ "$(cat "$BIN/pause.version" 2>/dev/null)" != "$(pause_source_hash)" ]; then
    start=$SECONDS
    ( build_pause ) > "$WORK/pause.log" 2>&1 || { log "pause FAILED:"; tail -n 15 "$WORK/pause.log" >&2; exit 1; }
    log "pause built in $((SECONDS - start))s"
  fi
fi
