#!/usr/bin/env bash
# Builds the local control plane into <repo>/target/controlplane/:
#   kube           kube-apiserver, kube-controller-manager, etcd and kubectl in one binary
#   govdc-cluster  the launcher (tests/controlplane/cmd/govdc-cluster)
#   helm           helm v3, from the separate module tests/helm
# and, for clusters with nodes (`govdc-cluster up NAME --nodes N`), the target `nodes`:
#   kube-node      kubelet, kube-proxy and kube-scheduler (tests/nodes/kube: the same pinned
#                  k8s.io/kubernetes module set as kube)
#   containerd, containerd-shim-runc-v2, ctr   containerd 2.x (tests/nodes/containerd)
#   runc           runc (tests/nodes/runc; cgo, libseccomp)
#   govdc-netpol   kube-router's NetworkPolicy controller alone (tests/nodes/netpol)
#   coredns        CoreDNS with the few plugins a cluster needs (tests/nodes/coredns)
#   local-path-provisioner   rancher's dynamic provisioner of node-local volumes, the default
#                  StorageClass (tests/nodes/localpath)
#   images/{pause,busybox,coredns,local-path-provisioner}.oci.tar   OCI archives packed with umoci
# The node target installs the Debian packages it and the nodes need when missing (apt-get).
# Each binary is rebuilt only when the sha256 of its inputs (go.mod, go.sum, the package's
# non-test *.go files, the ldflags, tags, cgo and `go version`) differs from
# <binary>.inputs-sha256; each image likewise over its recipe and files.
# A cold kube build takes 20-40 min on 2 cores; later builds reuse the Go build cache.
#   usage: tests/controlplane/build.sh [kube] [govdc-cluster] [helm] [nodes]
#          (default: govdc-cluster, kube and helm)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
helm_mod=$repo/tests/helm
nodes=$repo/tests/nodes
out=$repo/target/controlplane
export GOTOOLCHAIN=local CGO_ENABLED=0

# modversion GO_MOD MODULE: the version GO_MOD requires of MODULE.
modversion() {
  local v
  v=$(sed -n "s#^[[:space:]]*\(require[[:space:]]*\)\{0,1\}$2 \(v[^ ]*\).*#\2#p" "$1" | head -n1)
  [[ -n $v ]] || { echo "build.sh: $2 not found in $1" >&2; exit 1; }
  echo "$v"
}

# Build settings for the next `build` call (the node binaries change them).
tags="" cgo=0

# inputs_hash MODULE_DIR PKG_DIR LDFLAGS: sha256 over everything that shapes the binary.
inputs_hash() {
  local mod=$1 pkg=$2 ldflags=$3 f
  {
    go version
    echo "ldflags: $ldflags"
    # Only when set, so the hashes of kube, govdc-cluster and helm stay what they were.
    if [[ -n $tags || $cgo != 0 ]]; then echo "tags: $tags cgo: $cgo"; fi
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
  (cd "$mod" && CGO_ENABLED=$cgo go build -trimpath -tags "$tags" -o "$bin" -ldflags "$ldflags" "$package")
  echo "$hash" >"$stamp"
  echo "build.sh: built $name in $(($(date +%s) - start))s ($(du -h "$bin" | cut -f1))" >&2
}

# kube_ldflags: the version stamps of a binary built from the pinned k8s.io/kubernetes.
kube_ldflags() {
  local v major minor rest cv=k8s.io/component-base/version gv=k8s.io/client-go/pkg/version
  v=$(modversion "$here/go.mod" k8s.io/kubernetes)   # v1.36.3
  rest=${v#v}; major=${rest%%.*}; rest=${rest#*.}; minor=${rest%%.*}
  echo "-s -w \
-X $cv.gitVersion=$v -X $cv.gitMajor=$major -X $cv.gitMinor=$minor \
-X $cv.gitTreeState=clean -X $cv.buildDate=2026-01-01T00:00:00Z \
-X $gv.gitVersion=$v -X $gv.gitMajor=$major -X $gv.gitMinor=$minor"
}

build_kube() {
  build kube "$here" "$here/cmd/kube" ./cmd/kube "$(kube_ldflags)"
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

# ensure_packages PKG...: apt-get install the Debian packages that are not installed.
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [[ ${#missing[@]} -gt 0 ]] || return 0
  echo "build.sh: installing ${missing[*]} (apt-get)" >&2
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
  fi
}

# check_pins: tests/nodes/kube must use the control plane's k8s.io/kubernetes module set.
check_pins() {
  local a=$here/go.mod b=$nodes/kube/go.mod
  if [[ $(modversion "$a" k8s.io/kubernetes) != $(modversion "$b" k8s.io/kubernetes) ]] ||
    ! diff <(grep '=>' "$a") <(grep '=>' "$b") >/dev/null; then
    echo "build.sh: $b must require the k8s.io/kubernetes version and carry the replaces of $a" >&2
    exit 1
  fi
}

# build_image NAME TAG SETUP INPUT...: an OCI archive images/NAME.oci.tar whose root filesystem
# the function SETUP fills (called with the rootfs directory), rebuilt when the inputs change.
build_image() {
  local name=$1 tag=$2 setup=$3; shift 3
  local img=$out/images/$name.oci.tar stamp=$out/images/$name.oci.tar.inputs-sha256 work hash f
  hash=$({
    umoci --version
    echo "$name:$tag"
    declare -f "$setup" build_image
    for f in "$@"; do sha256sum "$f"; done
  } | sha256sum | cut -d' ' -f1)
  if [[ -f $img && -f $stamp && $(<"$stamp") == "$hash" ]]; then
    echo "build.sh: image $name is up to date ($img)" >&2
    return
  fi
  work=$out/images/work-$name
  rm -rf "$work" "$stamp" && mkdir -p "$work"
  umoci init --layout "$work/layout"
  umoci new --image "$work/layout:$tag"
  umoci unpack --rootless --image "$work/layout:$tag" "$work/bundle" >/dev/null
  "$setup" "$work/bundle/rootfs"
  umoci repack --image "$work/layout:$tag" "$work/bundle"
  umoci config --image "$work/layout:$tag" "${image_config[@]}" \
    --config.label "org.opencontainers.image.title=$name" \
    --config.label "org.opencontainers.image.version=$tag"
  umoci gc --layout "$work/layout"
  tar -C "$work/layout" -cf "$img.tmp" . && mv "$img.tmp" "$img"
  rm -rf "$work"
  echo "$hash" >"$stamp"
  echo "build.sh: built image $name:$tag ($(du -h "$img" | cut -f1))" >&2
}

pause_rootfs() { install -D -m 0755 "$out/images/pause" "$1/pause"; }
busybox_rootfs() {
  local a
  install -D -m 0755 /bin/busybox "$1/bin/busybox"
  for a in $(/bin/busybox --list); do [[ $a == busybox ]] || ln -sf busybox "$1/bin/$a"; done
  mkdir -p "$1/tmp" "$1/etc" && chmod 1777 "$1/tmp"
  echo "root:x:0:0:root:/root:/bin/sh" >"$1/etc/passwd"
  echo "nonroot:x:65532:65532:nonroot:/home/nonroot:/bin/sh" >>"$1/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$1/etc/group"
}
coredns_rootfs() { install -D -m 0755 "$out/coredns" "$1/coredns"; }
local_path_rootfs() { install -D -m 0755 "$out/local-path-provisioner" "$1/local-path-provisioner"; }

build_nodes() {
  ensure_packages nftables iptables ipset conntrack containernetworking-plugins \
    libseccomp-dev pkg-config gcc libc6-dev busybox-static umoci
  check_pins
  build kube-node "$nodes/kube" "$nodes/kube/cmd/kube-node" ./cmd/kube-node "$(kube_ldflags)"
  tags="no_btrfs no_devmapper no_zfs urfave_cli_no_docs"
  local b v
  v=$(modversion "$nodes/containerd/go.mod" github.com/containerd/containerd/v2)
  for b in containerd containerd-shim-runc-v2 ctr; do
    build "$b" "$nodes/containerd" "$nodes/containerd" "github.com/containerd/containerd/v2/cmd/$b" \
      "-s -w -X github.com/containerd/containerd/v2/version.Version=$v"
  done
  # runc needs cgo for seccomp (libseccomp); its libpathrs tag would need a Rust library.
  tags="seccomp urfave_cli_no_docs" cgo=1
  v=$(modversion "$nodes/runc/go.mod" github.com/opencontainers/runc)
  build runc "$nodes/runc" "$nodes/runc" github.com/opencontainers/runc "-s -w -X main.version=${v#v}"
  tags="" cgo=0
  build govdc-netpol "$nodes/netpol" "$nodes/netpol/cmd/govdc-netpol" ./cmd/govdc-netpol "-s -w"
  build coredns "$nodes/coredns" "$nodes/coredns/cmd/coredns" ./cmd/coredns "-s -w"
  build local-path-provisioner "$nodes/localpath" "$nodes/localpath" github.com/rancher/local-path-provisioner "-s -w"

  # The sandbox image: kubernetes' own pause.c from the pinned module, static.
  local src
  src=$(cd "$nodes/kube" && go mod download -json k8s.io/kubernetes | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')/build/pause/linux/pause.c
  mkdir -p "$out/images"
  if [[ ! -x $out/images/pause || $src -nt $out/images/pause ]]; then
    gcc -Os -Wall -Werror -static -DVERSION=v3.10.2 -o "$out/images/pause" "$src"
    strip "$out/images/pause"
  fi
  image_config=(--config.entrypoint /pause --config.user 65535:65535)
  build_image pause 3.10.2 pause_rootfs "$src"
  image_config=(--config.entrypoint /bin/sh)
  build_image busybox "$(/bin/busybox | sed -n '1s/^BusyBox v\([0-9.]*\).*/\1/p')" busybox_rootfs /bin/busybox
  image_config=(--config.entrypoint /coredns --config.exposedports 53/udp --config.exposedports 53/tcp)
  build_image coredns "$(modversion "$nodes/coredns/go.mod" github.com/coredns/coredns)" coredns_rootfs "$out/coredns"
  image_config=(--config.entrypoint /local-path-provisioner)
  build_image local-path-provisioner "$(modversion "$nodes/localpath/go.mod" github.com/rancher/local-path-provisioner)" \
    local_path_rootfs "$out/local-path-provisioner"
}

mkdir -p "$out"
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(govdc-cluster kube helm)
for t in "${targets[@]}"; do
  case $t in
    kube) build_kube ;;
    govdc-cluster) build_launcher ;;
    helm) build_helm ;;
    nodes) build_nodes ;;
    *) echo "build.sh: unknown target $t (kube, govdc-cluster, helm, nodes)" >&2; exit 2 ;;
  esac
done
