package main

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

func testNode(i int) nodeSpec {
	return nodeSpec{
		Cluster:   "demo-dr",
		Index:     i,
		Dir:       "/work/main/target/clusters/demo-dr/nodes/n" + string(rune('0'+i)),
		APIServer: "https://10.89.0.1:40001",
		CACert:    "/work/main/target/clusters/demo-dr/pki/ca.crt",
		RuncBin:   "/work/main/target/controlplane/runc",
		CNIBinDir: cniBinDir,
	}
}

func mustContain(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, text)
		}
	}
}

func TestContainerdConfig(t *testing.T) {
	n := testNode(1)
	conf := containerdConfig(n)
	mustContain(t, "config.toml", conf,
		"version = 3\n",
		`root = "/work/main/target/clusters/demo-dr/nodes/n1/containerd/root"`,
		`address = "/work/main/target/clusters/demo-dr/nodes/n1/containerd/containerd.sock"`,
		`sandbox = "docker.io/govdc/pause:3.10.2"`,
		"restrict_oom_score_adj = true",
		"netns_mounts_under_state_dir = true",
		"SystemdCgroup = false",
		`BinaryName = "/work/main/target/controlplane/runc"`,
		`bin_dirs = ["/usr/lib/cni"]`,
		`conf_dir = "/work/main/target/clusters/demo-dr/nodes/n1/cni/net.d"`,
		`socket_dir = "`+n.shimSocketDir()+`"`,
	)
	// A path with a quote or backslash stays one TOML string.
	n.Dir = `/tmp/a "b\c`
	mustContain(t, "config.toml", containerdConfig(n), `root = "/tmp/a \"b\\c/containerd/root"`)
}

func TestShimSocketDirFitsContainerdLimit(t *testing.T) {
	long := testNode(15)
	long.Dir = "/" + strings.Repeat("x", 200) + "/nodes/n15"
	for _, n := range []nodeSpec{testNode(0), long} {
		if d := n.shimSocketDir(); len(d) > 42 || !strings.HasPrefix(d, "/run/govdc/") {
			t.Errorf("shim socket dir %q: want /run/govdc/... of at most 42 characters", d)
		}
	}
	if testNode(0).shimSocketDir() == testNode(1).shimSocketDir() {
		t.Error("two nodes share a shim socket directory")
	}
}

func TestCNIConfig(t *testing.T) {
	var conf struct {
		CNIVersion string `json:"cniVersion"`
		Name       string `json:"name"`
		Plugins    []struct {
			Type      string `json:"type"`
			Bridge    string `json:"bridge"`
			IsGateway bool   `json:"isGateway"`
			IPMasq    bool   `json:"ipMasq"`
			IPAM      struct {
				Type    string                      `json:"type"`
				DataDir string                      `json:"dataDir"`
				Ranges  [][]struct{ Subnet string } `json:"ranges"`
				Routes  []struct{ Dst string }      `json:"routes"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(cniConfig(testNode(3))), &conf); err != nil {
		t.Fatal(err)
	}
	if conf.Name != "govdc-demo-dr-n3" || len(conf.Plugins) != 2 || conf.Plugins[1].Type != "loopback" {
		t.Fatalf("unexpected network: %+v", conf)
	}
	b := conf.Plugins[0]
	if b.Type != "bridge" || !b.IsGateway || b.IPMasq || b.IPAM.Type != "host-local" {
		t.Errorf("bridge plugin: %+v", b)
	}
	if b.IPAM.Ranges[0][0].Subnet != "10.244.3.0/24" {
		t.Errorf("subnet %q, want 10.244.3.0/24", b.IPAM.Ranges[0][0].Subnet)
	}
	// Without a route covering the Service CIDR a ClusterIP is "Network is unreachable".
	if len(b.IPAM.Routes) != 1 || b.IPAM.Routes[0].Dst != "0.0.0.0/0" {
		t.Errorf("routes %+v, want the default route", b.IPAM.Routes)
	}
	if !strings.HasPrefix(b.IPAM.DataDir, testNode(3).Dir+"/") {
		t.Errorf("IPAM state %q outside the node directory", b.IPAM.DataDir)
	}
}

func TestKubeletConfig(t *testing.T) {
	conf := kubeletConfig(testNode(2))
	mustContain(t, "kubelet.yaml", conf,
		"kind: KubeletConfiguration\n",
		"failCgroupV1: false\n",
		"cgroupDriver: cgroupfs\n",
		`cgroupRoot: "/govdc-demo-dr-n2"`,
		`containerRuntimeEndpoint: "unix:///work/main/target/clusters/demo-dr/nodes/n2/containerd/containerd.sock"`,
		"failSwapOn: false\n",
		"address: 10.89.0.12\n",
		"clusterDNS: [10.0.0.10]\n",
		"authorization: {mode: Webhook}\n",
		`podLogsDir: "/work/main/target/clusters/demo-dr/nodes/n2/pod-logs"`,
		`nodefs.available: "0%"`,
	)
	if strings.Contains(conf, "%!") {
		t.Errorf("formatting error in kubelet.yaml:\n%s", conf)
	}
}

func TestProxyConfig(t *testing.T) {
	mustContain(t, "kube-proxy.yaml", proxyConfig(testNode(0)),
		"mode: nftables\n", "clusterCIDR: 10.244.0.0/16\n", `hostnameOverride: "demo-dr-node-0"`,
		"maxPerCore: 0", "metricsBindAddress: 127.0.0.1:10249")
}

func TestAddonsManifest(t *testing.T) {
	m := addonsManifest()
	mustContain(t, "add-ons", m,
		"clusterIP: 10.0.0.10\n", "image: docker.io/govdc/coredns:v1.15.0\n", "imagePullPolicy: Never\n",
		`name: "govdc:netpol"}`, "namespace: kube-system", "kubernetes cluster.local in-addr.arpa ip6.arpa")
	if strings.Contains(m, "%!") {
		t.Errorf("formatting error in the add-ons:\n%s", m)
	}
	// The Corefile is one JSON (hence YAML) string on its line.
	for _, line := range strings.Split(m, "\n") {
		if strings.HasPrefix(line, "  Corefile: ") {
			var s string
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "  Corefile: ")), &s); err != nil || s != corefile {
				t.Errorf("Corefile line does not hold the Corefile: %v", err)
			}
		}
	}
}

func TestNamesFitTheKernel(t *testing.T) {
	// Interface names have at most 15 bytes; namespace names become file names.
	long := strings.Repeat("a", 40)
	if !validName.MatchString(long) {
		t.Fatal("a 40-character name should be valid")
	}
	if got := nodeNetns(long, maxNodes-1); len(got) > 255 || strings.Contains(got, "/") {
		t.Errorf("namespace name %q", got)
	}
	if nodeIP(maxNodes-1) != "10.89.0.25" || nodePodSubnet(maxNodes-1) != "10.244.15.0/24" {
		t.Error("node addresses out of their ranges")
	}
}

func TestWithNodesAPIServerArgs(t *testing.T) {
	c := &cluster{Name: "x", Dir: "/tmp/x"}
	base := c.apiServerArgs(ports{EtcdClient: 1, EtcdPeer: 2, APIServer: 3, ControllerManager: 4})
	c.Nodes = 1
	args := c.apiServerArgs(ports{EtcdClient: 1, EtcdPeer: 2, APIServer: 3, ControllerManager: 4})
	for _, want := range []string{
		"--bind-address=0.0.0.0", "--advertise-address=10.89.0.1", "--endpoint-reconciler-type=lease",
		"--authorization-mode=Node,RBAC", "--kubelet-client-certificate=/tmp/x/pki/apiserver-kubelet-client.crt",
	} {
		if !slices.Contains(args, want) {
			t.Errorf("args lack %s: %v", want, args)
		}
	}
	if !slices.ContainsFunc(args, func(a string) bool {
		return strings.HasPrefix(a, "--enable-admission-plugins=") && strings.HasSuffix(a, ",NodeRestriction")
	}) {
		t.Errorf("NodeRestriction not enabled: %v", args)
	}
	seen := map[string]bool{}
	for _, a := range args {
		name, _, _ := strings.Cut(a, "=")
		if seen[name] {
			t.Errorf("flag %s given twice", name)
		}
		seen[name] = true
	}
	// Without nodes, the flags are those of a cluster without nodes.
	if !slices.Contains(base, "--bind-address=127.0.0.1") || !slices.Contains(base, "--authorization-mode=RBAC") ||
		!slices.Contains(base, "--endpoint-reconciler-type=none") {
		t.Errorf("a cluster without nodes changed: %v", base)
	}
	kcm := c.controllerManagerArgs(ports{})
	if !slices.ContainsFunc(kcm, func(a string) bool {
		return strings.HasPrefix(a, "--controllers=") && strings.Contains(a, ",node-lifecycle-controller,")
	}) {
		t.Errorf("controller-manager lacks the node controllers: %v", kcm)
	}
}

func TestMissingPrerequisites(t *testing.T) {
	ps := []prerequisite{
		{what: "nft", pkg: "apt-get install nftables", present: func() bool { return false }},
		{what: "ip", pkg: "apt-get install iproute2", present: func() bool { return true }},
		{what: "/usr/lib/cni/bridge", pkg: "apt-get install containernetworking-plugins", present: func() bool { return false }},
	}
	got := missingPrerequisites(ps)
	want := []string{"nft (apt-get install nftables)", "/usr/lib/cni/bridge (apt-get install containernetworking-plugins)"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	// Every machine prerequisite names where it comes from.
	for _, p := range machinePrerequisites("/nonexistent") {
		if p.what == "" || p.pkg == "" || p.present == nil {
			t.Errorf("incomplete prerequisite %+v", p)
		}
	}
}

func TestMountsUnder(t *testing.T) {
	info := strings.Join([]string{
		"22 1 254:1 / / rw - ext4 /dev/root rw",
		"90 22 0:50 / /work/c/nodes/n0/kubelet/pods/x/volumes/tok rw - tmpfs tmpfs rw",
		"91 22 0:51 / /work/c/nodes/n0/containerd/state/rootfs rw - overlay overlay rw",
		"92 22 0:52 / /work/c-other/x rw - tmpfs tmpfs rw",
		`93 22 0:53 / /work/c/with\040space rw - tmpfs tmpfs rw`,
		"",
	}, "\n")
	got := mountsUnder(info, "/work/c")
	want := []string{
		"/work/c/nodes/n0/kubelet/pods/x/volumes/tok",
		"/work/c/nodes/n0/containerd/state/rootfs",
		"/work/c/with space",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q (deepest first, another cluster's prefix left alone)", got, want)
	}
}

func TestImageBaseName(t *testing.T) {
	blobs := map[string]string{
		"sha256:m":  `{"config":{"digest":"sha256:c"}}`,
		"sha256:c":  `{"config":{"Labels":{"org.opencontainers.image.title":"govdc-hub"}}}`,
		"sha256:m2": `{"config":{"digest":"sha256:c2"}}`,
		"sha256:c2": `{"config":{"Labels":{}}}`,
	}
	read := func(d string) ([]byte, error) {
		if b, ok := blobs[d]; ok {
			return []byte(b), nil
		}
		return nil, errors.New("missing " + d)
	}
	index := func(digest, ref string) ociIndex {
		var ix ociIndex
		_ = json.Unmarshal([]byte(`{"manifests":[{"digest":"`+digest+`","annotations":{"org.opencontainers.image.ref.name":"`+ref+`"}}]}`), &ix)
		return ix
	}
	if got, err := imageBaseName(index("sha256:m", "0.1.0"), read); err != nil || got != "docker.io/govdc/govdc-hub" {
		t.Errorf("tag-only archive: got %q, %v", got, err)
	}
	if got, err := imageBaseName(index("sha256:x", "example.org/a/b:1"), read); err != nil || got != "" {
		t.Errorf("fully named archive: got %q, %v", got, err)
	}
	if _, err := imageBaseName(index("sha256:m2", "1.0"), read); err == nil || !strings.Contains(err.Error(), "org.opencontainers.image.title") {
		t.Errorf("tag-only archive without a title: %v", err)
	}
	if _, err := imageBaseName(ociIndex{}, read); err == nil {
		t.Error("an empty index was accepted")
	}
}

func TestDNSQuery(t *testing.T) {
	q := dnsQuery("kubernetes.default.svc.cluster.local")
	if len(q) != 12+len("kubernetes.default.svc.cluster.local")+2+4 || q[12] != 10 || string(q[13:23]) != "kubernetes" {
		t.Fatalf("query %x", q)
	}
	reply := append([]byte{0x67, 0x76, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0}, q[12:]...)
	if !dnsAnswered(reply) {
		t.Error("an answer with one record was not taken")
	}
	nx := append([]byte{0x67, 0x76, 0x81, 0x83, 0, 1, 0, 0, 0, 0, 0, 0}, q[12:]...)
	if dnsAnswered(nx) || dnsAnswered(q) || dnsAnswered(nil) {
		t.Error("NXDOMAIN, the query itself or nothing taken as an answer")
	}
}
