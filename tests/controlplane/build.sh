#!/usr/bin/env bash
# Builds the local control plane into <repo>/target/controlplane/:
#   kube           kube-apiserver, kube-controller-manager, etcd and kubectl in one binary
#   govdc-cluster  the launcher (tests/controlplane/cmd/govdc-cluster)
#   helm           helm v3, from the separate module tests/helm
# Each binary is rebuilt only when the sha256 of its inputs (go.mod, go.sum, the package's
# non-test *.go files, the ldflags and `go version`) differs from <binary>.inputs-sha256.
# A cold kube build takes 20-40 min on 2 cores; later builds reuse the Go build cache.
#   usage: tests/controlplane/build.sh [kube] [govdc-cluster] [helm]   (default: all three)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
helm_mod=$repo/tests/helm
out=$repo/target/controlplane
export GOTOOLCHAIN=local CGO_ENABLED=0

# modversion GO_MOD MODULE: the version GO_MOD requires of MODULE.
modversion() {
  local v
  v=$(sed -n "s#^[[:space:]]*$2 \(v[^ ]*\).*#\1#p" "$1" | head -n1)
  [[ -n $v ]] || { echo "build.sh: $2 not found in $1" >&2; exit 1; }
  echo "$v"
}

# inputs_hash MODULE_DIR PKG_DIR LDFLAGS: sha256 over everything that shapes the binary.
inputs_hash() {
  local mod=$1 pkg=$2 ldflags=$3 f
  {
    go version
    echo "ldflags: $ldflags"
    for f in "$mod/go.mod" "$mod/go.sum" $(find "$pkg" -maxdepth 1 -name '*.go' ! -name '*_test.go' 2>/dev/null | LC_ALL=C sort); do
      echo "== ${f#"$mod"/}"
      cat "$f"
    done
  } | sha256sum | cut -d' ' -f1
}

# build NAME MODULE_DIR PKG_DIR PACKAGE LDFLAGS: go build PACKAGE into $out/NAME unless its
# inputs hash matches the stored one.
build() {
  local name=$1 mod=$2 pkg=$3 package=$4 ldflags=$5
  local bin=$out/$name stamp=$out/$name.inputs-sha256 hash start
  hash=$(inputs_hash "$mod" "$pkg" "$ldflags")
  if [[ -x $bin && -f $stamp && $(<"$stamp") == "$hash" ]]; then
    echo "build.sh: $name is up to date ($bin)" >&2
    return
  fi
  echo "build.sh: building $name ..." >&2
  start=$(date +%s)
  rm -f "$stamp"
  (cd "$mod" && go build -trimpath -o "$bin" -ldflags "$ldflags" "$package")
  echo "$hash" >"$stamp"
  echo "build.sh: built $name in $(($(date +%s) - start))s ($(du -h "$bin" | cut -f1))" >&2
}

build_kube() {
  local v major minor rest cv=k8s.io/component-base/version gv=k8s.io/client-go/pkg/version
  v=$(modversion "$here/go.mod" k8s.io/kubernetes)   # v1.36.3
  rest=${v#v}; major=${rest%%.*}; rest=${rest#*.}; minor=${rest%%.*}
  build kube "$here" "$here/cmd/kube" ./cmd/kube "-s -w \
-X $cv.gitVersion=$v -X $cv.gitMajor=$major -X $cv.gitMinor=$minor \
-X $cv.gitTreeState=clean -X $cv.buildDate=2026-01-01T00:00:00Z \
-X $gv.gitVersion=$v -X $gv.gitMajor=$major -X $gv.gitMinor=$minor"
}

build_launcher() {
  build govdc-cluster "$here" "$here/cmd/govdc-cluster" ./cmd/govdc-cluster "-s -w"
}

build_helm() {
  local v kv minor
  v=$(modversion "$helm_mod/go.mod" helm.sh/helm/v3)          # v3.22.0
  kv=$(modversion "$helm_mod/go.mod" k8s.io/client-go)        # v0.37.0 -> Kubernetes 1.37
  minor=${kv#v0.}; minor=${minor%%.*}
  # As helm's Makefile: the version, and the Kubernetes version `helm template` and
  # `helm lint` assume when no cluster is asked (else 1.20).
  build helm "$helm_mod" "$helm_mod" helm.sh/helm/v3/cmd/helm "-s -w \
-X helm.sh/helm/v3/internal/version.version=$v \
-X helm.sh/helm/v3/internal/version.gitTreeState=clean \
-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor \
-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
}

mkdir -p "$out"
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(govdc-cluster kube helm)
for t in "${targets[@]}"; do
  case $t in
    kube) build_kube ;;
    govdc-cluster) build_launcher ;;
    helm) build_helm ;;
    *) echo "build.sh: unknown target $t (kube, govdc-cluster, helm)" >&2; exit 2 ;;
  esac
done
