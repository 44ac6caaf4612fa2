#!/usr/bin/env bash
# `deploy/demo.sh` (its default mode, also `deploy/demo.sh pods`): the demo data center with
# everything as pods (see deploy/demo.sh).
#   usage: deploy/demo-pods.sh PRIMARY STANDBY   (deploy/demo.sh passes demo and demo-dr)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
primary=${1:?primary cluster}
standby=${2:?standby cluster}
cluster=target/controlplane/govdc-cluster
helm=target/controlplane/helm
admin=target/clusters/$primary/kubeconfig
standby_admin=target/clusters/$standby/kubeconfig
# GOVDC_DEMO_PORT_OFFSET moves every port the demo forwards to (its test uses one, so a user's
# demo on the usual ports is never what it reads).
offset=${GOVDC_DEMO_PORT_OFFSET:-0}
port() { echo $(($1 + offset)); }
ports=(8080 8081 8091 8092 8093 9091 9092 9093)
# A port another process holds would leave its forward retrying and the printed address serving
# something else: refuse at once instead.
for p in "${ports[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$(port "$p")") 2>/dev/null; then
    echo "deploy/demo.sh: 127.0.0.1:$(port "$p") is in use: another deploy/demo.sh still forwarding (stop it with Ctrl-C), or set GOVDC_DEMO_PORT_OFFSET to move the demo's ports" >&2
    exit 1
  fi
done
kubectl() { target/controlplane/kube kubectl --kubeconfig "$admin" "$@"; }

echo "== building the local control plane and the node parts (the first build takes several minutes)"
bash tests/controlplane/build.sh
bash tests/controlplane/build.sh nodes
echo "== building govdc-operator and govdc-hub, packing their images (deploy/image/build-oci.sh)"
# build-oci.sh packs with umoci, a Debian package, installed when missing as build.sh installs
# the nodes' packages.
if ! command -v umoci >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends umoci \
    || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends umoci; }
fi
cargo build -q -p govdc-operator --bin govdc-operator
cargo build -q -p govdc-hub --bin govdc-hub
# The images' tag: the primary's name (the demo's test packs its own beside a user's demo) and
# the binaries' digest. A run after a rebuild must move the operator and the hubs onto the new
# code, and a tag reused for new content did not: the node restarts the old pods from the image
# it still holds before the new archive is loaded, and an unchanged Deployment never rolls.
tag=$primary-$(cat target/debug/govdc-operator target/debug/govdc-hub | sha256sum | cut -c1-12)
# Earlier builds' archives of this primary go (the node keeps what it loaded).
rm -f target/images/govdc-{operator,hub}-"$primary"-????????????.oci.tar
rm -rf target/images/work-{operator,hub}-"$primary"-????????????
GOVDC_OCI_BINARY=target/debug/govdc-operator bash deploy/image/build-oci.sh operator "$tag" >/dev/null
GOVDC_OCI_BINARY=target/debug/govdc-hub bash deploy/image/build-oci.sh hub "$tag" >/dev/null
images=(target/images/govdc-operator-$tag.oci.tar target/images/govdc-hub-$tag.oci.tar)

echo "== starting clusters with a node each (a cluster the local mode started: deploy/demo.sh down first)"
"$cluster" up "$primary" --nodes 1
"$cluster" up "$standby" --nodes 1
"$cluster" load "$primary" "${images[@]}"
"$cluster" load "$standby" "${images[@]}"
# The operator's pods reach the DR cluster's API server through a link into its namespace.
standby_in_cluster=target/clusters/$primary/link-$standby.kubeconfig
"$cluster" link "$primary" "$standby" --out "$standby_in_cluster"

echo "== the hub nodes' namespace (the chart binds the operator there, so it comes first)"
kubectl create namespace govdc-hub --dry-run=client -o yaml | kubectl apply -f -
kubectl label namespace govdc-hub govdc.io/exchange-hub=true --overwrite

echo "== installing govdc with Helm (the operator runs as the chart's pods)"
"$helm" upgrade --install govdc charts/govdc --kubeconfig "$admin" --namespace govdc-system --create-namespace \
  --set image.tag=$tag --set hub.image.tag=$tag --set logging.format=text \
  --set "capacity.requests\.cpu=64" --set "capacity.requests\.memory=256Gi" --wait --timeout 180s
kubectl wait --for=condition=Established --timeout=60s -f crds/ >/dev/null

echo "== samples: departments, exchange nodes, a DR policy"
kubectl -n govdc-system create secret generic dr-kubeconfig \
  --from-file=kubeconfig="$standby_in_cluster" --dry-run=client -o yaml | kubectl apply -f -
# The portal's absolute links start at the address the host reaches it on (the port-forward
# below): the portal node's portalUrl goes in with the samples, so its hub starts once with it
# (a patch afterwards restarted the hub while the datasets were being published).
for file in deploy/samples/*.yaml; do
  echo ---
  sed "s|^  openDataPortal: true\$|&\n  portalUrl: http://127.0.0.1:$(port 8081)|" "$file"
done | kubectl apply --server-side --force-conflicts -f -

echo "== waiting for the hubs' pods"
for hub in national zhejiang guangdong; do
  for _ in $(seq 120); do kubectl -n govdc-hub get pod "$hub-hub-0" >/dev/null 2>&1 && break; sleep 1; done
done
kubectl -n govdc-hub wait --for=condition=Ready --timeout=180s pod/national-hub-0 pod/zhejiang-hub-0 pod/guangdong-hub-0

echo "== samples: open datasets, once the departments' namespaces exist"
for namespace in hz-health-prod zj-data-prod; do
  for _ in $(seq 60); do kubectl get namespace "$namespace" >/dev/null 2>&1 && break; sleep 1; done
done
kubectl apply --server-side --force-conflicts -f deploy/samples/datasets/

# Forward a Service port to 127.0.0.1, again whenever the pod behind it is replaced.
pids=()
stop_all() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap stop_all EXIT INT TERM
mkdir -p target/demo
forward() {
  local namespace=$1 service=$2 ports=$3 log=target/demo/forward-$2.log
  # The loop's kubectl goes with it: stopping the loop stops the forward.
  (
    child=
    trap '[[ -n $child ]] && kill "$child" 2>/dev/null; exit 0' TERM INT
    while true; do
      # Not the kubectl function: its subshell would leave kube behind when killed.
      target/controlplane/kube kubectl --kubeconfig "$admin" -n "$namespace" port-forward \
        --address 127.0.0.1 "svc/$service" $ports >>"$log" 2>&1 &
      child=$!
      wait "$child" || true
      sleep 1
    done
  ) &
  pids+=($!)
}
forward govdc-hub national-hub "$(port 8081):8080 $(port 8091):8081 $(port 9091):9090"
forward govdc-hub zhejiang-hub "$(port 8092):8081 $(port 9092):9090"
forward govdc-hub guangdong-hub "$(port 8093):8081 $(port 9093):9090"
forward govdc-system govdc-metrics "$(port 8080):8080"

cat <<INFO

govdc demo data center is up, everything as pods.
  kubeconfig ($primary):  export KUBECONFIG=$root/$admin
  kubeconfig ($standby):  $root/$standby_admin
  kubectl:               target/controlplane/kube kubectl get govdc -A
                         target/controlplane/kube kubectl get pods -A -o wide
  operator (2 pods):     kubectl -n govdc-system get pods,lease; logs: kubectl -n govdc-system logs deploy/govdc
                         metrics http://127.0.0.1:$(port 8080)/metrics (port-forward of svc/govdc-metrics)
  hub nodes (pods):      kubectl -n govdc-hub get pods,pvc (each hub's data on a local-path volume)
  open-data portal:      http://127.0.0.1:$(port 8081)/datasets  (the website; port-forward of svc/national-hub)
                         API: http://127.0.0.1:$(port 8081)/api/3/action/package_search, /catalog.jsonld
  sharing monitor:       http://127.0.0.1:$(port 8091)/ (national), :$(port 8092) (zhejiang), :$(port 8093) (guangdong)
  hub metrics:           http://127.0.0.1:$(port 9091)/metrics (national), :$(port 9092), :$(port 9093)
  tear down:             Ctrl-C (stops the port-forwards), then deploy/demo.sh down

Forwarding until Ctrl-C ...
INFO
wait "${pids[0]}"
