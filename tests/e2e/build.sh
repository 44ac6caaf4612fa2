#!/usr/bin/env bash
# Builds the focused Kubernetes e2e suite and its test images into <repo>/target/e2e/:
#   e2e.test     k8s.io/kubernetes/test/e2e at the control plane's pinned version, with only the
#                pods/Services/DNS/NetworkPolicy spec packages linked in (tests/e2e/e2e_test.go)
#   agnhost      k8s.io/kubernetes/test/images/agnhost from the same module
#   images/agnhost.oci.tar   agnhost as an OCI archive (umoci), named as the e2e framework names it
# tests/e2e is a Go module of its own (its go.mod adds ginkgo, gomega and agnhost's dependencies
# to the module set of tests/nodes/kube without changing one shared version), so the control
# plane's and the nodes' inputs never change. Each output is rebuilt only when the sha256 of its
# inputs differs from <output>.inputs-sha256, as in tests/controlplane/build.sh; the flags are
# the same as there (-trimpath, CGO_ENABLED=0), so packages already compiled for kube-node come
# from Go's build cache. -vet=off: go test would otherwise vet (and compute vet facts for) every
# package of the suite, which changes nothing in the binary and takes minutes.
#   usage: tests/e2e/build.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cp_build=$repo/tests/controlplane/build.sh
out=$repo/target/e2e
export GOTOOLCHAIN=local CGO_ENABLED=0

modversion() {
  local v
  v=$(sed -n "s#^[[:space:]]*\(require[[:space:]]*\)\{0,1\}$2 \(v[^ ]*\).*#\2#p" "$1" | head -n1)
  [[ -n $v ]] || { echo "build.sh: $2 not found in $1" >&2; exit 1; }
  echo "$v"
}

# The e2e module must use the control plane's k8s.io/kubernetes and replaces.
a=$repo/tests/controlplane/go.mod b=$here/go.mod
if [[ $(modversion "$a" k8s.io/kubernetes) != $(modversion "$b" k8s.io/kubernetes) ]] ||
  ! diff <(grep '=>' "$a") <(grep '=>' "$b") >/dev/null; then
  echo "e2e/build.sh: $b must require the k8s.io/kubernetes version and carry the replaces of $a" >&2
  exit 1
fi
kv=$(modversion "$b" k8s.io/kubernetes)
rest=${kv#v}; major=${rest%%.*}; rest=${rest#*.}; minor=${rest%%.*}
cv=k8s.io/component-base/version gv=k8s.io/client-go/pkg/version
ldflags="-s -w -X $cv.gitVersion=$kv -X $cv.gitMajor=$major -X $cv.gitMinor=$minor \
-X $cv.gitTreeState=clean -X $cv.buildDate=2026-01-01T00:00:00Z \
-X $gv.gitVersion=$kv -X $gv.gitMajor=$major -X $gv.gitMinor=$minor"

# inputs_hash KIND FILE...: sha256 over the Go version, the flags, the kind and the files.
inputs_hash() {
  local f kind=$1; shift
  {
    go version
    echo "$kind ldflags: $ldflags"
    for f in "$@"; do echo "== ${f#"$here"/}"; cat "$f"; done
  } | sha256sum | cut -d' ' -f1
}

# fresh NAME HASH: true when $out/NAME exists and was built from HASH.
fresh() { [[ -e $out/$1 && -f $out/$1.inputs-sha256 && $(<"$out/$1.inputs-sha256") == "$2" ]]; }

mkdir -p "$out/images"
cd "$here"

hash=$(inputs_hash test go.mod go.sum $(find . -maxdepth 1 -name '*.go' | LC_ALL=C sort))
if fresh e2e.test "$hash"; then
  echo "e2e/build.sh: e2e.test is up to date" >&2
else
  echo "e2e/build.sh: building e2e.test ..." >&2
  start=$(date +%s)
  rm -f "$out/e2e.test.inputs-sha256"
  go test -c -vet=off -trimpath -ldflags "$ldflags" -o "$out/e2e.test" .
  echo "$hash" >"$out/e2e.test.inputs-sha256"
  echo "e2e/build.sh: built e2e.test in $(($(date +%s) - start))s ($(du -h "$out/e2e.test" | cut -f1))" >&2
fi

hash=$(inputs_hash agnhost go.mod go.sum)
if fresh agnhost "$hash"; then
  echo "e2e/build.sh: agnhost is up to date" >&2
else
  echo "e2e/build.sh: building agnhost ..." >&2
  start=$(date +%s)
  rm -f "$out/agnhost.inputs-sha256"
  go build -trimpath -ldflags "-s -w" -o "$out/agnhost" k8s.io/kubernetes/test/images/agnhost
  echo "$hash" >"$out/agnhost.inputs-sha256"
  echo "e2e/build.sh: built agnhost in $(($(date +%s) - start))s ($(du -h "$out/agnhost" | cut -f1))" >&2
fi

# The test images. The e2e framework names agnhost, glibc-dns-testing and busybox under its
# promoterE2eRegistry and pause under gcRegistry; run.sh's repo list points both at docker.io/govdc,
# where `govdc-cluster load` puts a tag-only archive whose title label is NAME (the project's
# pause:3.10.2 is already there). The three share one root filesystem: agnhost at /agnhost (its
# upstream entrypoint), busybox for sh/seq/test, and dig and getent with their libraries from the
# Debian packages bind9-dnsutils and libc-bin, which is what the DNS specs' probes run (upstream
# agnhost is Alpine with bind-tools; glibc-dns-testing a glibc image with dig), and OpenBSD's nc
# (netcat-openbsd) instead of Debian busybox's, which lacks the -v, -t, -u and -z the Services
# specs pass (`echo hostName | nc -v -t -w 2 SERVICE PORT`; Alpine's busybox has them). sh is
# Debian's dash: Debian's static busybox ash runs its own applets before PATH, so its nc would win.
# curl (Debian's) is what the Networking specs exec in their test pod, as in upstream agnhost.
for p in umoci busybox-static bind9-dnsutils netcat-openbsd curl; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    echo "e2e/build.sh: installing $p (apt-get)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$p" >&2
  fi
done

# The Debian binaries copied into the image with their libraries.
tools="/usr/bin/dig /usr/bin/getent /usr/bin/curl /bin/nc.openbsd /bin/dash"

# libs BINARY...: the shared libraries (and the loader) the binaries need, one path a line.
libs() { ldd "$@" | sed -n 's#^[[:space:]]*\(.* => \)\{0,1\}\(/[^ ]*\) (0x.*#\2#p' | LC_ALL=C sort -u; }

tools_rootfs() {
  local r=$1 a f
  install -D -m 0755 "$out/agnhost" "$r/agnhost"
  install -D -m 0755 /bin/busybox "$r/bin/busybox"
  for a in $(/bin/busybox --list); do [[ $a == busybox || $a == nc || $a == sh ]] || ln -sf busybox "$r/bin/$a"; done
  install -D -m 0755 /bin/nc.openbsd "$r/usr/bin/nc"
  install -D -m 0755 /bin/dash "$r/bin/sh"
  for f in /usr/bin/dig /usr/bin/getent /usr/bin/curl $(libs $tools); do
    install -D -m 0755 "$f" "$r$f"
  done
  mkdir -p "$r/tmp" "$r/etc" && chmod 1777 "$r/tmp"
  echo "root:x:0:0:root:/root:/bin/sh" >"$r/etc/passwd"
  echo "root:x:0:" >"$r/etc/group"
  echo "hosts: files dns" >"$r/etc/nsswitch.conf"
}

# build_image NAME TAG: images/NAME.oci.tar from tools_rootfs, rebuilt when its inputs change.
build_image() {
  local name=$1 tag=$2 img=$out/images/$1.oci.tar work=$out/images/work-$1 hash
  hash=$({
    umoci --version
    echo "$name:$tag"
    declare -f tools_rootfs build_image libs
    sha256sum "$out/agnhost" /bin/busybox $tools $(libs $tools)
  } | sha256sum | cut -d' ' -f1)
  if fresh "images/$name.oci.tar" "$hash"; then
    echo "e2e/build.sh: image $name is up to date" >&2
    return
  fi
  rm -rf "$work" "$img.inputs-sha256" && mkdir -p "$work"
  umoci init --layout "$work/layout"
  umoci new --image "$work/layout:$tag"
  umoci unpack --rootless --image "$work/layout:$tag" "$work/bundle" >/dev/null
  tools_rootfs "$work/bundle/rootfs"
  umoci repack --image "$work/layout:$tag" "$work/bundle"
  umoci config --image "$work/layout:$tag" --config.entrypoint /agnhost --config.cmd pause \
    --config.label "org.opencontainers.image.title=$name" \
    --config.label "org.opencontainers.image.version=$tag"
  umoci gc --layout "$work/layout"
  tar -C "$work/layout" -cf "$img.tmp" . && mv "$img.tmp" "$img"
  rm -rf "$work"
  echo "$hash" >"$img.inputs-sha256"
  echo "e2e/build.sh: built image $name:$tag ($(du -h "$img" | cut -f1))" >&2
}

# The tags upstream's test/utils/image/manifest.go gives them at this version.
build_image agnhost 2.63.0
build_image glibc-dns-testing 2.0.0
build_image busybox 1.37.0-1
