#!/usr/bin/env bash
# Builds grpcurl (github.com/fullstorydev/grpcurl, pinned in go.mod/go.sum beside this script)
# into <repo>/target/grpcurl/grpcurl: a gRPC client the project did not write, which the hub's
# tests use to list services through reflection and ask the health service.
# Rebuilt only when the sha256 of its inputs (go.mod, go.sum, `go version`) changes, as
# tests/controlplane/build.sh does for helm.
#   usage: tests/grpcurl/build.sh     prints the binary's path
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$repo/target/grpcurl
bin=$out/grpcurl
stamp=$bin.inputs-sha256
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

hash=$({ go version; cat "$here/go.mod" "$here/go.sum"; } | sha256sum | cut -d' ' -f1)
mkdir -p "$out"
if [[ -x $bin && -f $stamp && $(<"$stamp") == "$hash" ]]; then
  echo "build.sh: grpcurl is up to date" >&2
else
  echo "build.sh: building grpcurl ..." >&2
  start=$(date +%s)
  rm -f "$stamp"
  (cd "$here" && go build -trimpath -ldflags "-s -w" -o "$bin" github.com/fullstorydev/grpcurl/cmd/grpcurl)
  echo "$hash" >"$stamp"
  echo "build.sh: built grpcurl in $(($(date +%s) - start))s" >&2
fi
echo "$bin"
