package main

// The configuration files of a cluster's nodes, rendered from a nodeSpec by pure functions
// (tested in nodeconfig_test.go). Why each setting is what it is: docs/controlplane.md, "Nodes".

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// The network of a cluster with nodes. Every cluster has network namespaces of its own, so these
// addresses are the same in every cluster and never meet.
const (
	// controlPlaneIP is the control plane's address on the cluster's LAN bridge, in the cluster's
	// network namespace: etcd, kube-apiserver, kube-controller-manager and kube-scheduler run there.
	controlPlaneIP = "10.89.0.1"
	lanPrefix      = 24
	// podCIDR holds every node's pod subnet (10.244.I.0/24 for node I).
	podCIDR = "10.244.0.0/16"
	// dnsServiceIP is the ClusterIP of kube-system/kube-dns (CoreDNS).
	dnsServiceIP  = "10.0.0.10"
	clusterDomain = "cluster.local"
	// maxNodes keeps node addresses (10.89.0.10+I) and pod subnets inside their ranges.
	maxNodes = 16
)

// Images the project builds (tests/controlplane/build.sh) and every node imports at start. The
// names are what `govdc-cluster load` gives a tag-only archive: govdc/<title>:<tag>.
const (
	pauseImage   = "docker.io/govdc/pause:3.10.2"
	corednsImage = "docker.io/govdc/coredns:v1.15.0"
)

// nodeSpec is everything a node's configuration depends on.
type nodeSpec struct {
	Cluster   string // cluster name
	Index     int    // 0-based
	Dir       string // the node's directory, <cluster>/nodes/n<I>
	APIServer string // https://10.89.0.1:<port>, as the node reaches it
	CACert    string // the cluster CA's certificate file
	RuncBin   string // runc built by build.sh
	CNIBinDir string // Debian's containernetworking-plugins
}

// nodeName is the Node object's name (and the kubelet's hostname override).
func nodeName(cluster string, i int) string { return fmt.Sprintf("%s-node-%d", cluster, i) }

// clusterNetns is the network namespace holding the control plane and the LAN bridge.
func clusterNetns(cluster string) string { return "govdc-" + cluster }

// nodeNetns is node I's network namespace.
func nodeNetns(cluster string, i int) string { return fmt.Sprintf("govdc-%s-n%d", cluster, i) }

// nodeIP is node I's address on the cluster LAN (its InternalIP).
func nodeIP(i int) string { return "10.89.0." + strconv.Itoa(10+i) }

// nodePodSubnet is node I's pod subnet.
func nodePodSubnet(i int) string { return fmt.Sprintf("10.244.%d.0/24", i) }

// cgroupRoot is node I's kubelet cgroup root (in every cgroup hierarchy); pods live below it.
func (n nodeSpec) cgroupRoot() string { return "/" + nodeNetns(n.Cluster, n.Index) }

func (n nodeSpec) name() string { return nodeName(n.Cluster, n.Index) }
func (n nodeSpec) path(elem ...string) string {
	return filepath.Join(append([]string{n.Dir}, elem...)...)
}
func (n nodeSpec) containerdSocket() string     { return n.path("containerd", "containerd.sock") }
func (n nodeSpec) kubeletConfigPath() string    { return n.path("kubelet.yaml") }
func (n nodeSpec) kubeletKubeconfig() string    { return n.path("kubelet.kubeconfig") }
func (n nodeSpec) proxyConfigPath() string      { return n.path("kube-proxy.yaml") }
func (n nodeSpec) proxyKubeconfig() string      { return n.path("kube-proxy.kubeconfig") }
func (n nodeSpec) netpolKubeconfig() string     { return n.path("netpol.kubeconfig") }
func (n nodeSpec) containerdConfigPath() string { return n.path("containerd", "config.toml") }
func (n nodeSpec) cniConfDir() string           { return n.path("cni", "net.d") }

// shimSocketDir holds the containerd shims' sockets: a short path of the node's own (containerd
// allows at most 42 characters, too few for the node directory), removed by down.
func (n nodeSpec) shimSocketDir() string {
	sum := sha256.Sum256([]byte(n.Dir))
	return "/run/govdc/" + hex.EncodeToString(sum[:6])
}

// tomlString quotes s as a TOML basic string (JSON's escapes are a subset of TOML's).
func tomlString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

// containerdConfig renders containerd's config.toml (version 3, containerd 2.x).
func containerdConfig(n nodeSpec) string {
	q := tomlString
	var b strings.Builder
	fmt.Fprintf(&b, `version = 3
root = %s
state = %s

[grpc]
  address = %s

[ttrpc]
  address = %s

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %s

[plugins.'io.containerd.cri.v1.runtime']
  # This sandbox has no CAP_SYS_RESOURCE: nobody may lower oom_score_adj, and runc's init fails on
  # the sandbox's -998 unless containerd keeps scores at or above its own.
  restrict_oom_score_adj = true
  # Pod network namespaces are mounted under the node's state directory, not /var/run/netns, so
  # that down finds and unmounts them with the rest of the cluster.
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = %s
        Root = %s
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [%s]
    conf_dir = %s
    max_conf_num = 1

[plugins.'io.containerd.shim.v1.manager']
  socket_dir = %s

[plugins.'io.containerd.nri.v1.nri']
  disable = true
`,
		q(n.path("containerd", "root")), q(n.path("containerd", "state")),
		q(n.containerdSocket()), q(n.path("containerd", "ttrpc.sock")),
		q(pauseImage),
		q(n.RuncBin), q(n.path("containerd", "runc")),
		q(n.CNIBinDir), q(n.cniConfDir()), q(n.shimSocketDir()))
	return b.String()
}

// cniConfig renders the node's CNI network: a bridge with host-local addresses from the node's
// pod subnet. The pods' default route goes through the bridge (the node), so Service ClusterIPs
// (which only the node's kube-proxy rules translate) and the control plane are reachable; nothing
// beyond the cluster's namespaces is routed anywhere.
func cniConfig(n nodeSpec) string {
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       nodeNetns(n.Cluster, n.Index),
		"plugins": []any{
			map[string]any{
				"type":        "bridge",
				"bridge":      "cni0",
				"isGateway":   true,
				"ipMasq":      false,
				"hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"dataDir": n.path("cni", "ipam"),
					"ranges":  []any{[]any{map[string]any{"subnet": nodePodSubnet(n.Index)}}},
					"routes":  []any{map[string]any{"dst": "0.0.0.0/0"}},
				},
			},
			map[string]any{"type": "loopback"},
		},
	}
	b, _ := json.MarshalIndent(conf, "", "  ") // maps of strings, bools and slices always marshal
	return string(b) + "\n"
}

// kubeletConfig renders the KubeletConfiguration.
func kubeletConfig(n nodeSpec) string {
	q := tomlString // a JSON string is a YAML string
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# Kubernetes 1.36 refuses cgroup v1 unless told otherwise; this kernel mounts the v1 controllers
# (cgroup2 only at /sys/fs/cgroup/unified).
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: %s
containerRuntimeEndpoint: %s
failSwapOn: false
# The sandbox cannot lower any oom_score_adj (no CAP_SYS_RESOURCE).
oomScoreAdj: 0
address: %s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %s}
authorization: {mode: Webhook}
clusterDomain: %s
clusterDNS: [%s]
# Pods never inherit the machine's resolver: no name outside the cluster resolves.
resolvConf: ""
podLogsDir: %s
# Disk and image thresholds off (as kind sets them): the shared disk's fill level is not this
# node's business; memory keeps a small floor.
evictionHard: {memory.available: 100Mi, nodefs.available: "0%%", nodefs.inodesFree: "0%%", imagefs.available: "0%%"}
imageGCHighThresholdPercent: 100
registerNode: true
serializeImagePulls: false
`, q(n.cgroupRoot()), q("unix://"+n.containerdSocket()), nodeIP(n.Index), q(n.CACert),
		clusterDomain, dnsServiceIP, q(n.path("pod-logs")))
}

// proxyConfig renders kube-proxy's KubeProxyConfiguration.
func proxyConfig(n nodeSpec) string {
	q := tomlString
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
# nftables: this kernel has no IPVS; Debian's nft 1.0.6 suffices.
mode: nftables
clusterCIDR: %s
hostnameOverride: %s
clientConnection: {kubeconfig: %s}
bindAddress: %s
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
# nf_conntrack_max is not per network namespace: leave the machine's settings alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
`, podCIDR, q(n.name()), q(n.proxyKubeconfig()), nodeIP(n.Index))
}

// corefile is CoreDNS's configuration: cluster.local from the API server, nothing else.
const corefile = `.:53 {
    errors
    health {
        lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    cache 30
    loadbalance
}
`

// addonsManifest renders the cluster add-ons the launcher applies once the API server is up:
// the policy enforcer's read access, and CoreDNS as kube-system/coredns behind the kube-dns
// Service (a pod in kube-system, as NetworkPolicies that allow DNS expect).
func addonsManifest() string {
	cf, _ := json.Marshal(corefile) // a string always marshals
	return fmt.Sprintf(`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "govdc:netpol"}
rules:
- {apiGroups: [""], resources: [pods, namespaces, nodes], verbs: [get, list, watch]}
- {apiGroups: [networking.k8s.io], resources: [networkpolicies], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "govdc:netpol"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "govdc:netpol"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "%s"}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- {apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects:
- {kind: ServiceAccount, name: coredns, namespace: kube-system}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: %s
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata:
      labels: {k8s-app: kube-dns}
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      tolerations:
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoSchedule}
      containers:
      - name: coredns
        image: %s
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {name: dns, containerPort: 53, protocol: UDP}
        - {name: dns-tcp, containerPort: 53, protocol: TCP}
        readinessProbe:
          httpGet: {path: /ready, port: 8181}
          periodSeconds: 2
        livenessProbe:
          httpGet: {path: /health, port: 8080}
          initialDelaySeconds: 30
        resources:
          requests: {cpu: 10m, memory: 32Mi}
          limits: {memory: 128Mi}
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
        volumeMounts:
        - {name: config, mountPath: /etc/coredns, readOnly: true}
      volumes:
      - name: config
        configMap: {name: coredns}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  clusterIP: %s
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
`, netpolUser, cf, corednsImage, dnsServiceIP)
}

// netpolUser is the policy enforcer's identity (its client certificate's CN).
const netpolUser = "govdc:netpol"
