#!/usr/bin/env bash
# A local demo data center, from scratch, in one of two modes:
#
#   deploy/demo.sh         (or deploy/demo.sh pods) everything as pods, the default: the clusters
#                          get a real node each (kubelet, containerd; see docs/controlplane.md),
#                          the operator and hub images are packed by deploy/image/build-oci.sh and
#                          loaded, govdc is installed with its Helm chart and runs as the chart's
#                          Deployment (two replicas, one leading), and each sample ExchangeNode's
#                          hub runs as its StatefulSet's pod on a volume of the cluster's default
#                          StorageClass, reached by its Service's DNS name. The script forwards the
#                          portal and the operator's metrics to 127.0.0.1 (kubectl port-forward)
#                          until Ctrl-C, and prints the addresses.
#   deploy/demo.sh local   the quick local-process mode: clusters without nodes, where the script
#                          plays the kubelet's part. The chart's Deployment is scaled to zero and
#                          the operator runs as a local process with the chart's ServiceAccount,
#                          and each sample ExchangeNode's hub runs as a local process from the
#                          ConfigMap and key Secret the operator made for its StatefulSet (the
#                          operator finds them through --hub-endpoint).
#   deploy/demo.sh down    stops the demo's clusters (either mode's).
#
# Ctrl-C stops what the script runs (the port-forwards, or the local processes). The demo's
# clusters are `demo` and `demo-dr`, never the tests' own (`primary`, `dr`, `spare`, `samples`,
# `nodes-test`, `incluster`, `isolation`, ...), so `cargo test --workspace` after a demo starts
# clean; a cluster runs in one mode at a time (switching: deploy/demo.sh down first). Running it
# again re-applies the samples, taking back the fields a user's edits took over, and leaves the
# user's own objects alone. GOVDC_DEMO_CLUSTER and GOVDC_DEMO_DR_CLUSTER name other clusters for
# the demo (its test, operator/tests/demo.rs, uses its own).
#   usage: deploy/demo.sh [pods|local|down]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cluster=target/controlplane/govdc-cluster
helm=target/controlplane/helm
primary=${GOVDC_DEMO_CLUSTER:-demo}
standby=${GOVDC_DEMO_DR_CLUSTER:-demo-dr}
admin=target/clusters/$primary/kubeconfig
operator_kubeconfig=target/clusters/$primary/govdc-operator.kubeconfig
capacity="requests.cpu=64,requests.memory=256Gi"
kubectl() { target/controlplane/kube kubectl --kubeconfig "$admin" "$@"; }

mode=${1:-pods}
case $mode in
  down)
    for name in "$primary" "$standby"; do "$cluster" down "$name" || true; done
    exit 0 ;;
  local) ;;
  pods) exec bash "$root/deploy/demo-pods.sh" "$primary" "$standby" ;;
  *) echo "usage: deploy/demo.sh [pods|local|down]   (pods, the default: everything as pods; local: the quick local-process mode)" >&2; exit 2 ;;
esac

echo "== building the local control plane (the first build takes several minutes)"
bash tests/controlplane/build.sh
echo "== building govdc-operator and govdc-hub"
cargo build -q -p govdc-operator --bin govdc-operator
cargo build -q -p govdc-hub --bin govdc-hub

echo "== starting clusters"
"$cluster" up "$primary"
"$cluster" up "$standby"

echo "== the hub nodes' namespace (the chart binds the operator there, so it comes first)"
kubectl create namespace govdc-hub --dry-run=client -o yaml | kubectl apply -f -
kubectl label namespace govdc-hub govdc.io/exchange-hub=true --overwrite

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
kubectl -n govdc-system create secret generic dr-kubeconfig \
  --from-file=kubeconfig=target/clusters/$standby/kubeconfig --dry-run=client -o yaml | kubectl apply -f -
kubectl apply --server-side --force-conflicts -f deploy/samples/

# The sample hub nodes, each on fixed local ports: gRPC 5005N, metrics 909N.
hubs=(national zhejiang guangdong)
hub_flags=()
for i in "${!hubs[@]}"; do
  hub_flags+=(--hub-endpoint "govdc-hub/${hubs[$i]}=http://127.0.0.1:$((50051 + i))")
done
pids=()
stop_all() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap stop_all EXIT INT TERM

mkdir -p target/demo
echo "== running govdc-operator against $primary as the chart's ServiceAccount (log: target/demo/operator.log)"
target/debug/govdc-operator run \
  --kubeconfig "$operator_kubeconfig" \
  --metrics-address 127.0.0.1:8080 --log-format text \
  --lease-namespace govdc-system --lease-name govdc --capacity "$capacity" \
  --tenant-role govdc-tenant --service-account govdc-system/govdc \
  "${hub_flags[@]}" >target/demo/operator.log 2>&1 &
pids+=($!)

# Run one hub the way its StatefulSet's pod would: its ConfigMap's config.yaml and its key Secret,
# with the listen addresses and the data directory overridden for this machine.
run_hub() {
  local name=$1 index=$2 dir=target/demo/hubs/$1
  mkdir -p "$dir"
  for _ in $(seq 60); do
    kubectl -n govdc-hub get configmap "$name-hub" >/dev/null 2>&1 \
      && kubectl -n govdc-hub get secret "$name-hub-key" >/dev/null 2>&1 && break
    sleep 1
  done
  kubectl -n govdc-hub get configmap "$name-hub" -o jsonpath='{.data.config\.yaml}' >"$dir/config.yaml"
  kubectl -n govdc-hub get secret "$name-hub-key" -o jsonpath='{.data.key}' | base64 -d >"$dir/key"
  chmod 600 "$dir/key"
  # A portal node's public port, on this machine 8081 and up.
  local portal=()
  if grep -q '^portalListen:' "$dir/config.yaml"; then portal=(GOVDC_HUB_PORTAL_LISTEN=127.0.0.1:$((8081 + index))); fi
  # Every node's internal sharing-monitor website (port 8081 in its pod), here 8091 and up.
  env "${portal[@]}" GOVDC_HUB_MONITOR_LISTEN=127.0.0.1:$((8091 + index)) GOVDC_HUB_LISTEN=127.0.0.1:$((50051 + index)) GOVDC_HUB_METRICS_LISTEN=127.0.0.1:$((9091 + index)) \
  GOVDC_HUB_DATA_DIR=$dir/data GOVDC_HUB_AUTH_KEY_FILE=$dir/key GOVDC_HUB_LOG_FORMAT=text \
    target/debug/govdc-hub serve --config "$dir/config.yaml" >"$dir/hub.log" 2>&1 &
  pids+=($!)
}
echo "== starting the sample hub nodes (logs: target/demo/hubs/NAME/hub.log)"
for i in "${!hubs[@]}"; do run_hub "${hubs[$i]}" "$i"; done

echo "== samples: open datasets, once the departments' namespaces exist"
for namespace in hz-health-prod zj-data-prod; do
  for _ in $(seq 60); do kubectl get namespace "$namespace" >/dev/null 2>&1 && break; sleep 1; done
done
kubectl apply --server-side --force-conflicts -f deploy/samples/datasets/

cat <<INFO

govdc demo data center is up.
  kubeconfig (demo):     export KUBECONFIG=$root/$admin
  kubeconfig (demo-dr):  $root/target/clusters/$standby/kubeconfig
  kubectl:               target/controlplane/kube kubectl get govdc -A
  operator:              http://127.0.0.1:8080/metrics  /livez  /readyz   (log: target/demo/operator.log)
  hub nodes (gRPC):      national 127.0.0.1:50051, zhejiang :50052, guangdong :50053
  open-data portal:      http://127.0.0.1:8081/  (website; API: /api/3/action/package_search, /catalog.jsonld)
  sharing monitor:       http://127.0.0.1:8091/ (national), :8092 (zhejiang), :8093 (guangdong)
  hub metrics:           http://127.0.0.1:9091/metrics (national), :9092, :9093
  tear down:             Ctrl-C, then deploy/demo.sh down

Running until Ctrl-C ...
INFO
wait "${pids[0]}"
