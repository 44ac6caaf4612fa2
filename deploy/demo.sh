#!/usr/bin/env bash
# A local demo data center, from scratch: builds the control plane and the operator, brings up
# the primary cluster and a DR cluster, installs govdc's CRDs and the samples, then runs the
# operator in the foreground against primary. Ctrl-C stops the operator; `deploy/demo.sh down`
# stops the clusters.
#   usage: deploy/demo.sh [up|down]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cluster=target/controlplane/govdc-cluster
kubectl() { target/controlplane/kube kubectl --kubeconfig target/clusters/primary/kubeconfig "$@"; }

if [[ ${1:-up} == down ]]; then
  for name in primary dr; do "$cluster" down "$name" || true; done
  exit 0
fi

echo "== building the local control plane (the first build takes a few minutes)"
bash tests/controlplane/build.sh
echo "== building govdc-operator"
cargo build -q -p govdc-operator --bin govdc-operator

echo "== starting clusters"
"$cluster" up primary
"$cluster" up dr

echo "== installing govdc's CRDs and the samples"
kubectl apply --server-side -f crds/
kubectl wait --for=condition=Established --timeout=60s -f crds/ >/dev/null
kubectl create namespace govdc-system --dry-run=client -o yaml | kubectl apply -f -
kubectl create namespace govdc-hub --dry-run=client -o yaml | kubectl apply -f -
kubectl label namespace govdc-hub govdc.io/exchange-hub=true --overwrite
kubectl -n govdc-system create secret generic dr-kubeconfig \
  --from-file=kubeconfig=target/clusters/dr/kubeconfig --dry-run=client -o yaml | kubectl apply -f -
kubectl apply --server-side -f deploy/samples/

cat <<INFO

govdc demo data center is up.
  kubeconfig (primary):  export KUBECONFIG=$root/target/clusters/primary/kubeconfig
  kubeconfig (dr):       $root/target/clusters/dr/kubeconfig
  kubectl:               target/controlplane/kube kubectl get govdc -A
  metrics and health:    http://127.0.0.1:8080/metrics  /livez  /readyz
  tear down:             deploy/demo.sh down

Running govdc-operator against primary (Ctrl-C to stop) ...
INFO
exec target/debug/govdc-operator run \
  --kubeconfig target/clusters/primary/kubeconfig \
  --metrics-address 127.0.0.1:8080 --log-format text --lease-namespace govdc-system \
  --capacity requests.cpu=64,requests.memory=256Gi
