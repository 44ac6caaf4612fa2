#!/usr/bin/env bash
# Runs a focused subset of the Kubernetes e2e suite (tests/e2e/build.sh) against a local cluster
# of its own with real nodes, then stops it: build (cached by input hash), `govdc-cluster up`,
# load the test images, run e2e.test with the framework told the images' names (so nothing is
# pulled), print which specs passed and failed, `govdc-cluster down`.
#   usage: tests/e2e/run.sh [FOCUS_REGEX]
#   env:   E2E_CLUSTER (default e2e), E2E_NODES (default 1), E2E_TIMEOUT (ginkgo's, default 25m),
#          E2E_SKIP (default: [Slow], [Serial], [Disruptive], [Flaky], SCTP, IPv6, [Provider:...]),
#          E2E_KEEP=1 leaves the cluster up. The exit status is e2e.test's.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cluster=${E2E_CLUSTER:-e2e}
nodes=${E2E_NODES:-1}
bin=$repo/target/controlplane
out=$repo/target/e2e
# The starting set (see README "Kubernetes e2e subset"): specs that exercise pods, Services, DNS
# and NetworkPolicy on one node.
default_focus='\[sig-node\] Pods should be submitted and removed|\[sig-network\] Services should (serve a basic endpoint from pods|serve multiport endpoints from pods|be able to create a functioning NodePort service)|\[sig-network\] DNS should provide DNS for (the cluster|services|pods for Hostname) +\[|\[sig-network\] Networking Granular Checks: Pods should function for intra-pod communication: http|\[sig-network\] Netpol NetworkPolicy between server and client should (support a .default-deny-ingress. policy|enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector)'
focus=${1:-$default_focus}
skip=${E2E_SKIP:-'\[Slow\]|\[Serial\]|\[Disruptive\]|\[Flaky\]|\[Feature:SCTPConnectivity\]|IPv6|\[Provider:'}

"$repo/tests/controlplane/build.sh" govdc-cluster kube nodes
"$here/build.sh"

work=$(mktemp -d /tmp/govdc-e2e.XXXXXX)
down() {
  if [[ ${E2E_KEEP:-0} != 1 ]]; then "$bin/govdc-cluster" down "$cluster" >&2 || true; fi
}
trap down EXIT

start=$(date +%s)
kubeconfig=$("$bin/govdc-cluster" up "$cluster" --nodes "$nodes")
echo "run.sh: cluster $cluster up in $(($(date +%s) - start))s ($kubeconfig)" >&2
"$bin/govdc-cluster" load "$cluster" "$out"/images/{agnhost,glibc-dns-testing,busybox}.oci.tar

# Every registry the framework knows is docker.io/govdc, where `load` puts tag-only archives
# (and where the nodes' own pause:3.10.2 already is); an image the project does not build is
# then absent and shows as ErrImageNeverPull/ImagePullBackOff on its pod, never a download.
cat >"$work/repo-list.yaml" <<'YAML'
promoterE2eRegistry: docker.io/govdc
buildImageRegistry: docker.io/govdc
gcEtcdRegistry: docker.io/govdc
gcRegistry: docker.io/govdc
sigStorageRegistry: docker.io/govdc
privateRegistry: docker.io/govdc
dockerLibraryRegistry: docker.io/govdc
cloudProviderGcpRegistry: docker.io/govdc
invalidRegistry: invalid.registry.k8s.io/invalid
YAML

# kubectl for the framework's diagnostics on failure: the kube multicall binary by that name.
ln -s "$bin/kube" "$work/kubectl"

start=$(date +%s)
rc=0
(cd "$work" && KUBE_TEST_REPO_LIST=$work/repo-list.yaml "$out/e2e.test" \
  --kubeconfig="$kubeconfig" --kubectl-path="$work/kubectl" --provider=local --dump-logs-on-failure=false \
  --ginkgo.focus="$focus" --ginkgo.skip="$skip" --ginkgo.timeout="${E2E_TIMEOUT:-25m}" \
  --ginkgo.no-color --ginkgo.json-report="$work/report.json" --report-dir="$work" \
  >"$work/e2e.log" 2>&1) || rc=$?
echo "run.sh: e2e.test exited $rc after $(($(date +%s) - start))s; log $work/e2e.log" >&2
if [[ -f $work/report.json ]]; then
  jq -r '.[].SpecReports[] | select(.LeafNodeType == "It" and .State != "skipped") |
    "\(.State | ascii_upcase)\t\(.RunTime / 1e9 | floor)s\t\([.ContainerHierarchyTexts[], .LeafNodeText] | join(" "))" +
    (if .State == "failed" or .State == "timedout" then "\n\t" + (.Failure.Message | split("\n")[0:3] | join(" ")) else "" end)' \
    "$work/report.json"
else
  tail -n 30 "$work/e2e.log"
fi
exit "$rc"
