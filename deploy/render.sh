#!/usr/bin/env bash
# Renders the Helm chart into plain manifests for `kubectl apply` users: deploy/manifests/govdc.yaml
# (CRDs included, release `govdc` in namespace `govdc-system`, default values).
#   deploy/render.sh           write it
#   deploy/render.sh --check   fail if the committed file differs from the chart (CI runs this)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
helm=$root/target/controlplane/helm
[[ -x $helm ]] || bash "$root/tests/controlplane/build.sh" helm
out=$root/deploy/manifests/govdc.yaml
rendered=$({
  echo "# Rendered from charts/govdc by deploy/render.sh; do not edit. Install: kubectl create namespace govdc-system && kubectl apply --server-side -f $(basename "$out")"
  "$helm" template govdc "$root/charts/govdc" --namespace govdc-system --include-crds
})
if [[ ${1:-} == --check ]]; then
  if ! diff -u "$out" <(printf '%s\n' "$rendered") >/dev/null; then
    echo "deploy/render.sh: $out differs from the chart; run deploy/render.sh" >&2
    exit 1
  fi
  exit 0
fi
printf '%s\n' "$rendered" > "$out"
echo "wrote $out"
