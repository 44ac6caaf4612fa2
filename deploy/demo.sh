#!/usr/bin/env bash
# A local demo data center, from scratch: builds the control plane and the operator, brings up
# the primary cluster and a DR cluster, installs govdc with its Helm chart, applies the samples,
# then runs the operator in the foreground against primary with the chart's own ServiceAccount
# (there is no kubelet here, so the chart's Deployment is scaled to zero and the operator runs as a
# local process). Ctrl-C stops the operator; `deploy/demo.sh down` stops the clusters.
#   usage: deploy/demo.sh [up|down]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cluster=target/controlplane/govdc-cluster
helm=target/controlplane/helm
admin=target/clusters/primary/kubeconfig
operator_kubeconfig=target/clusters/primary/govdc-operator.kubeconfig
capacity="requests.cpu=64,requests.memory=256Gi"
kubectl() { target/controlplane/kube kubectl --kubeconfig "$admin" "$@"; }

if [[ ${1:-up} == down ]]; then
  for name in primary dr; do "$cluster" down "$name" || true; done
  exit 0
fi

echo "== building the local control plane (the first build takes several minutes)"
bash tests/controlplane/build.sh
echo "== building govdc-operator"
cargo build -q -p govdc-operator --bin govdc-operator

echo "== starting clusters"
"$cluster" up primary
"$cluster" up dr

echo "== installing govdc with Helm"
"$helm" upgrade --install govdc charts/govdc --kubeconfig "$admin" --namespace govdc-system --create-namespace \
  --set replicaCount=0 --set logging.format=text \
  --set "capacity.requests\.cpu=64" --set "capacity.requests\.memory=256Gi"
kubectl wait --for=condition=Established --timeout=60s -f crds/ >/dev/null

echo "== the operator's credentials: a token of the chart's ServiceAccount"
token=$(kubectl -n govdc-system create token govdc --duration=24h)
server=$(kubectl config view --raw -o jsonpath='{.clusters[0].cluster.server}')
ca=$(kubectl config view --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
umask 077
cat > "$operator_kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters: [{name: primary, cluster: {server: "$server", certificate-authority-data: "$ca"}}]
users: [{name: govdc-operator, user: {token: "$token"}}]
contexts: [{name: govdc-operator, context: {cluster: primary, user: govdc-operator}}]
current-context: govdc-operator
YAML

echo "== samples: departments, exchange nodes, a DR policy"
kubectl create namespace govdc-hub --dry-run=client -o yaml | kubectl apply -f -
kubectl label namespace govdc-hub govdc.io/exchange-hub=true --overwrite
kubectl -n govdc-system create secret generic dr-kubeconfig \
  --from-file=kubeconfig=target/clusters/dr/kubeconfig --dry-run=client -o yaml | kubectl apply -f -
kubectl apply --server-side -f deploy/samples/

cat <<INFO

govdc demo data center is up.
  kubeconfig (primary):  export KUBECONFIG=$root/$admin
  kubeconfig (dr):       $root/target/clusters/dr/kubeconfig
  kubectl:               target/controlplane/kube kubectl get govdc -A
  metrics and health:    http://127.0.0.1:8080/metrics  /livez  /readyz
  tear down:             deploy/demo.sh down

Running govdc-operator against primary as the chart's ServiceAccount (Ctrl-C to stop) ...
INFO
exec target/debug/govdc-operator run \
  --kubeconfig "$operator_kubeconfig" \
  --metrics-address 127.0.0.1:8080 --log-format text \
  --lease-namespace govdc-system --lease-name govdc --capacity "$capacity"
