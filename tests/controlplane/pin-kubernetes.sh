#!/usr/bin/env bash
# Pins k8s.io/kubernetes at the given version and replaces every staging module it names with the
# matching v0.X.Y, read from that version's own go.mod (never typed by hand: the list changes
# between minors, 1.36 added k8s.io/streaming and k8s.io/cri-streaming).
#   usage: ./pin-kubernetes.sh 1.36.3
set -euo pipefail
cd "$(dirname "$0")"
export GOTOOLCHAIN=local
v=${1#v}
staging="v0.${v#1.}"
gomod=$(go mod download -json "k8s.io/kubernetes@v$v" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
go mod edit -require="k8s.io/kubernetes@v$v"
for m in $(sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/src/.*#\1#p' "$gomod"); do
  go mod edit -replace="$m=$m@$staging"
done
# etcd server at the same version the apiserver's etcd client uses.
etcd=$(sed -n 's#^[[:space:]]*go\.etcd\.io/etcd/client/v3 \(v[^ ]*\).*#\1#p' "$gomod")
go mod edit -require="go.etcd.io/etcd/server/v3@$etcd"
go mod tidy
