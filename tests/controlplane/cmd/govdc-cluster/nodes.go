package main

// Clusters with nodes (`up NAME --nodes N`). The cluster's network namespace govdc-NAME holds the
// control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) and a LAN bridge
// at 10.89.0.1; node I has the namespace govdc-NAME-nI, joined to the bridge by a veth pair, with
// containerd (+ runc), kubelet, kube-proxy (nftables) and the policy enforcer (kube-router's
// netpol controller). A forwarder in the machine's namespace serves the API server on
// 127.0.0.1:<port>, so kubeconfigs look as they do without nodes. `down` kills every process in
// those namespaces and the pods' cgroups, unmounts what lies under the cluster directory and
// deletes the namespaces, which takes every address, route and firewall rule with them.

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	nodeReadyTimeout  = 180 * time.Second
	containerdTimeout = 60 * time.Second
	addonsTimeout     = 180 * time.Second
	cniBinDir         = "/usr/lib/cni"
	cgroupMount       = "/sys/fs/cgroup"
	forwarder         = "forward"
	scheduler         = "kube-scheduler"
)

// nodeBinaries are built by `tests/controlplane/build.sh nodes` beside govdc-cluster.
var nodeBinaries = []string{"kube-node", "containerd", "containerd-shim-runc-v2", "ctr", "runc", "govdc-netpol"}

// nodeImages are the OCI archives build.sh makes (images/<name>.oci.tar) and every node imports.
var nodeImages = []string{"pause", "coredns", "busybox", "local-path-provisioner"}

// prerequisite is something `up --nodes` needs from the machine.
type prerequisite struct {
	what    string // a command on PATH, or a file
	pkg     string // the Debian package, or how to get it
	present func() bool
}

// missingPrerequisites returns, in order, what of prereqs is not present, each with its package.
func missingPrerequisites(prereqs []prerequisite) []string {
	var missing []string
	for _, p := range prereqs {
		if !p.present() {
			missing = append(missing, fmt.Sprintf("%s (%s)", p.what, p.pkg))
		}
	}
	return missing
}

// machinePrerequisites lists what `up --nodes` checks before it changes anything.
func machinePrerequisites(binDir string) []prerequisite {
	command := func(name, pkg string) prerequisite {
		return prerequisite{what: name, pkg: "apt-get install " + pkg, present: func() bool {
			_, err := exec.LookPath(name)
			return err == nil
		}}
	}
	file := func(path, pkg string) prerequisite {
		return prerequisite{what: path, pkg: pkg, present: func() bool { return fileExists(path) }}
	}
	ps := []prerequisite{
		command("ip", "iproute2"),
		command("nsenter", "util-linux"),
		command("nft", "nftables"),
		command("iptables", "iptables"),
		{what: "iptables with the nf_tables backend (kube-proxy writes nftables; the two must not mix)",
			pkg: "update-alternatives --set iptables /usr/sbin/iptables-nft", present: func() bool {
				out, err := exec.Command("iptables", "-V").Output()
				return err == nil && strings.Contains(string(out), "nf_tables")
			}},
		command("ipset", "ipset"),
		command("conntrack", "conntrack"),
		command("mount", "mount"),
		file(filepath.Join(cniBinDir, "bridge"), "apt-get install containernetworking-plugins"),
		file(filepath.Join(cniBinDir, "host-local"), "apt-get install containernetworking-plugins"),
		file(filepath.Join(cniBinDir, "loopback"), "apt-get install containernetworking-plugins"),
		{what: "kernel feature overlay filesystem", pkg: "a kernel with CONFIG_OVERLAY_FS", present: func() bool {
			data, err := os.ReadFile("/proc/filesystems")
			return err == nil && bytes.Contains(data, []byte("\toverlay\n"))
		}},
		{what: "kernel feature bridge netfilter (/proc/sys/net/bridge)", pkg: "a kernel with CONFIG_BRIDGE_NETFILTER",
			present: func() bool { return fileExists("/proc/sys/net/bridge") }},
		{what: "cgroup memory controller (" + cgroupMount + "/memory)", pkg: "a kernel with cgroup v1 controllers mounted",
			present: func() bool { return fileExists(filepath.Join(cgroupMount, "memory", "cgroup.procs")) }},
		{what: "root (network namespaces, mounts, cgroups)", pkg: "run as root",
			present: func() bool { return os.Geteuid() == 0 }},
	}
	for _, b := range nodeBinaries {
		ps = append(ps, file(filepath.Join(binDir, b), "run tests/controlplane/build.sh nodes"))
	}
	for _, img := range nodeImages {
		ps = append(ps, file(imageArchive(binDir, img), "run tests/controlplane/build.sh nodes"))
	}
	return ps
}

func imageArchive(binDir, name string) string {
	return filepath.Join(binDir, "images", name+".oci.tar")
}

// node returns the spec of node i.
func (c *cluster) node(i int, s state) nodeSpec {
	return nodeSpec{
		Cluster:   c.Name,
		Index:     i,
		Dir:       c.path("nodes", "n"+strconv.Itoa(i)),
		APIServer: "https://" + net.JoinHostPort(controlPlaneIP, strconv.Itoa(s.Ports.APIServer)),
		CACert:    c.pki().CACert(),
		RuncBin:   filepath.Join(c.BinDir, "runc"),
		CNIBinDir: cniBinDir,
	}
}

// netnsNames lists the cluster's network namespaces: the cluster's, then each node's.
func (c *cluster) netnsNames() []string {
	names := []string{clusterNetns(c.Name)}
	for i := range c.Nodes {
		names = append(names, nodeNetns(c.Name, i))
	}
	return names
}

// nodeProcess is a long-running process of a node (or the scheduler, or the forwarder).
type nodeProcess struct {
	key   string // pid and log file name
	netns string // "" for the machine's namespace
	bin   string
	args  []string // args[0] is what componentAlive checks
}

// nodeProcesses lists every node-side process in start order; `down` stops them in reverse.
func (c *cluster) nodeProcesses(s state) []nodeProcess {
	bin := func(name string) string { return filepath.Join(c.BinDir, name) }
	procs := []nodeProcess{
		{forwarder, "", bin("govdc-cluster"), []string{forwarder,
			"--netns=" + netnsPath(clusterNetns(c.Name)),
			"--listen=127.0.0.1:" + strconv.Itoa(s.Ports.APIServer),
			"--to=127.0.0.1:" + strconv.Itoa(s.Ports.APIServer)}},
		{scheduler, clusterNetns(c.Name), bin("kube-node"), []string{scheduler,
			"--kubeconfig=" + c.path("scheduler.kubeconfig"),
			"--authentication-kubeconfig=" + c.path("scheduler.kubeconfig"),
			"--authorization-kubeconfig=" + c.path("scheduler.kubeconfig"),
			"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=10259",
			"--kube-api-qps=200", "--kube-api-burst=400"}},
	}
	for i := range c.Nodes {
		n := c.node(i, s)
		ns := nodeNetns(c.Name, i)
		p := "n" + strconv.Itoa(i) + "-"
		procs = append(procs,
			nodeProcess{p + "containerd", ns, bin("containerd"), []string{"--config=" + n.containerdConfigPath()}},
			nodeProcess{p + "kubelet", ns, bin("kube-node"), []string{"kubelet",
				"--config=" + n.kubeletConfigPath(),
				"--kubeconfig=" + n.kubeletKubeconfig(),
				"--root-dir=" + n.path("kubelet"),
				"--cert-dir=" + n.path("kubelet", "pki"),
				"--hostname-override=" + n.name(),
				"--node-ip=" + nodeIP(i),
				"--v=1"}},
			nodeProcess{p + "kube-proxy", ns, bin("kube-node"), []string{"kube-proxy",
				"--config=" + n.proxyConfigPath()}},
			nodeProcess{p + "netpol", ns, bin("govdc-netpol"), []string{"--kubeconfig=" + n.netpolKubeconfig(),
				"--hostname-override=" + n.name(), "--service-cidr=" + serviceCIDR}},
		)
	}
	return procs
}

func (p nodeProcess) alive(c *cluster) bool {
	return componentAlive(readPid(c.pidFile(p.key)), p.args[0])
}

// nodesRunning reports whether every node-side process runs.
func (c *cluster) nodesRunning(s state) bool {
	for _, p := range c.nodeProcesses(s) {
		if !p.alive(c) {
			return false
		}
	}
	return true
}

// setupNetwork creates the cluster's namespaces, the LAN bridge and each node's veth and routes.
func (c *cluster) setupNetwork() error {
	cns := clusterNetns(c.Name)
	steps := [][]string{{"ip", "netns", "add", cns}}
	for i := range c.Nodes {
		steps = append(steps, []string{"ip", "netns", "add", nodeNetns(c.Name, i)})
	}
	for _, step := range steps {
		if err := runCmd(step[0], step[1:]...); err != nil {
			return err
		}
	}
	in := func(ns string, cmds ...[]string) error {
		for _, cmd := range cmds {
			if err := inNetns(ns, cmd...); err != nil {
				return err
			}
		}
		return nil
	}
	lan := controlPlaneIP + "/" + strconv.Itoa(lanPrefix)
	if err := in(cns,
		[]string{"ip", "link", "set", "lo", "up"},
		[]string{"ip", "link", "add", "lan0", "type", "bridge"},
		[]string{"ip", "addr", "add", lan, "dev", "lan0"},
		[]string{"ip", "link", "set", "lan0", "up"},
		[]string{"sysctl", "-qw", "net.ipv4.ip_forward=1"},
	); err != nil {
		return err
	}
	for i := range c.Nodes {
		ns, peer := nodeNetns(c.Name, i), "n"+strconv.Itoa(i)
		if err := in(cns,
			[]string{"ip", "link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"ip", "link", "set", peer, "master", "lan0", "up"},
			[]string{"ip", "route", "add", nodePodSubnet(i), "via", nodeIP(i)},
		); err != nil {
			return err
		}
		if err := in(ns,
			[]string{"ip", "link", "set", "lo", "up"},
			[]string{"ip", "addr", "add", nodeIP(i) + "/" + strconv.Itoa(lanPrefix), "dev", "eth0"},
			[]string{"ip", "link", "set", "eth0", "up"},
			// The cluster's own networks go to the cluster namespace; everything else is
			// unreachable at once. There is nothing beyond the cluster's namespaces, and with a
			// default route via the cluster namespace a lookup of a registry (a pull of an image
			// no node has) waited for DNS timeouts, the pod "ContainerCreating" for about 50 s,
			// before ErrImagePull.
			[]string{"ip", "route", "add", serviceCIDR, "via", controlPlaneIP},
			[]string{"ip", "route", "add", podCIDR, "via", controlPlaneIP},
			[]string{"ip", "route", "add", "unreachable", "default"},
			[]string{"sysctl", "-qw", "net.ipv4.ip_forward=1"},
			// Pod traffic crossing the node's bridge must pass the policy enforcer's iptables
			// rules and kube-proxy's nftables rules.
			[]string{"sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"},
		); err != nil {
			return err
		}
	}
	return nil
}

// writeNodeKubeconfigs issues the node-side identities and writes their kubeconfigs.
func (c *cluster) writeNodeKubeconfigs(s state) error {
	p := c.pki()
	ca, err := p.CA()
	if err != nil {
		return err
	}
	server := c.node(0, s).APIServer
	write := func(path, user string, groups ...string) error {
		client, err := ca.clientCert(user, groups...)
		if err != nil {
			return err
		}
		return kubeconfig{Cluster: c.Name, User: user, Server: server, CAPEM: ca.CertPEM, Client: client}.write(path)
	}
	if err := write(c.path("scheduler.kubeconfig"), "system:kube-scheduler"); err != nil {
		return err
	}
	for i := range c.Nodes {
		n := c.node(i, s)
		if err := os.MkdirAll(n.Dir, 0o755); err != nil {
			return err
		}
		if err := write(n.kubeletKubeconfig(), "system:node:"+n.name(), "system:nodes"); err != nil {
			return err
		}
		if err := write(n.proxyKubeconfig(), "system:kube-proxy"); err != nil {
			return err
		}
		if err := write(n.netpolKubeconfig(), netpolUser); err != nil {
			return err
		}
	}
	return nil
}

// writeNodeConfigs renders node i's configuration files.
func writeNodeConfigs(n nodeSpec) error {
	for _, dir := range []string{n.path("containerd"), n.cniConfDir(), n.path("cni", "ipam"), n.path("pod-logs"), n.path("kubelet")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	files := map[string]string{
		n.containerdConfigPath():                           containerdConfig(n),
		filepath.Join(n.cniConfDir(), "10-govdc.conflist"): cniConfig(n),
		n.kubeletConfigPath():                              kubeletConfig(n),
		n.proxyConfigPath():                                proxyConfig(n),
	}
	for path, content := range files {
		if err := writeFileAtomic(path, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// cgroupHierarchies lists the mounted cgroup hierarchies (v1 controllers and the unified one).
func cgroupHierarchies() []string {
	entries, _ := os.ReadDir(cgroupMount)
	var dirs []string
	for _, e := range entries {
		dir := filepath.Join(cgroupMount, e.Name())
		if fileExists(filepath.Join(dir, "cgroup.procs")) {
			dirs = append(dirs, dir)
		}
	}
	return dirs
}

// makeCgroupRoot creates the kubelet's cgroup root in every hierarchy (the kubelet refuses a
// root that does not exist); a new v1 cpuset starts empty, so it gets its parent's cpus and mems.
func makeCgroupRoot(root string) error {
	for _, h := range cgroupHierarchies() {
		dir := filepath.Join(h, root)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if parent, err := os.ReadFile(filepath.Join(h, f)); err == nil {
				if err := os.WriteFile(filepath.Join(dir, f), parent, 0o644); err != nil {
					return fmt.Errorf("%s: %w", filepath.Join(dir, f), err)
				}
			}
		}
	}
	return nil
}

// startNodes starts the forwarder, the scheduler and every node, applies the add-ons and waits
// for every node to be Ready and DNS to answer.
func (c *cluster) startNodes(s *state, start time.Time) error {
	if err := c.writeNodeKubeconfigs(*s); err != nil {
		return err
	}
	procs := c.nodeProcesses(*s)
	byKey := map[string]nodeProcess{}
	for _, p := range procs {
		byKey[p.key] = p
	}
	launch := func(p nodeProcess) (*process, error) {
		proc, err := startDetachedIn(p.netns, p.bin, p.args, c.Dir, c.logFile(p.key), c.pidFile(p.key), c.processEnv())
		if err != nil {
			return nil, err
		}
		s.PIDs[p.key] = proc.Pid
		return proc, nil
	}
	var timings []string
	step := func(what string, t time.Time) {
		timings = append(timings, fmt.Sprintf("%s %.1fs", what, time.Since(t).Seconds()))
	}

	t := time.Now()
	fwd, err := launch(byKey[forwarder])
	if err != nil {
		return err
	}
	admin, err := c.adminClient(false)
	if err != nil {
		return err
	}
	if err := waitFor(forwarder, 20*time.Second, fwd, c.logFile(forwarder), func() bool { return probe(admin, s.Server+"/readyz") }); err != nil {
		return err
	}
	step(forwarder, t)
	if _, err := launch(byKey[scheduler]); err != nil {
		return err
	}
	if err := c.applyManifest(addonsManifest()); err != nil {
		return err
	}
	var specs []nodeSpec
	for i := range c.Nodes {
		specs = append(specs, c.node(i, *s))
	}
	if err := c.applyManifest(storageManifest(specs)); err != nil {
		return err
	}

	for i := range c.Nodes {
		t := time.Now()
		n := c.node(i, *s)
		p := "n" + strconv.Itoa(i) + "-"
		if err := writeNodeConfigs(n); err != nil {
			return err
		}
		if err := makeCgroupRoot(n.cgroupRoot()); err != nil {
			return err
		}
		ctrd, err := launch(byKey[p+"containerd"])
		if err != nil {
			return err
		}
		if err := waitFor(p+"containerd", containerdTimeout, ctrd, c.logFile(p+"containerd"), func() bool {
			return exec.Command(filepath.Join(c.BinDir, "ctr"), "--address", n.containerdSocket(), "version").Run() == nil
		}); err != nil {
			return err
		}
		for _, img := range nodeImages {
			if err := c.importImage(n, imageArchive(c.BinDir, img)); err != nil {
				return err
			}
		}
		step(p+"containerd+images", t)
		for _, key := range []string{"kubelet", "kube-proxy"} {
			if _, err := launch(byKey[p+key]); err != nil {
				return err
			}
		}
	}
	t = time.Now()
	for i := range c.Nodes {
		name := nodeName(c.Name, i)
		p := "n" + strconv.Itoa(i) + "-"
		if err := waitFor(name+" Ready", nodeReadyTimeout, nil, c.logFile(p+"kubelet"), func() bool {
			return nodeReady(admin, s.Server, name, start)
		}); err != nil {
			return err
		}
		// The enforcer reads its Node's InternalIP at start, so it follows the registration.
		if _, err := launch(byKey[p+"netpol"]); err != nil {
			return err
		}
	}
	step("nodes Ready", t)
	t = time.Now()
	if err := waitFor("cluster DNS (kube-system/coredns behind kube-dns)", addonsTimeout, nil, c.logFile("n0-kubelet"), c.dnsAnswers); err != nil {
		return err
	}
	step("CoreDNS", t)
	fmt.Fprintf(os.Stderr, "govdc-cluster: %s: %d node(s) Ready in %.1fs since start (%s)\n",
		c.Name, c.Nodes, time.Since(start).Seconds(), strings.Join(timings, ", "))
	return nil
}

// processEnv is the environment of node processes: containerd finds its shim on PATH.
func (c *cluster) processEnv() []string {
	if c.Nodes == 0 {
		return nil
	}
	env := os.Environ()
	for i, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			env[i] = "PATH=" + c.BinDir + ":" + strings.TrimPrefix(kv, "PATH=")
			return env
		}
	}
	return append(env, "PATH="+c.BinDir+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
}

// adminClient is an HTTPS client with the admin certificate; inside reaches the API server from
// within the cluster's namespace (before the forwarder runs).
func (c *cluster) adminClient(inside bool) (*http.Client, error) {
	p := c.pki()
	caPEM, err := os.ReadFile(p.CACert())
	if err != nil {
		return nil, err
	}
	admin, err := loadKeyPair(p.AdminCert(), p.AdminKey())
	if err != nil {
		return nil, err
	}
	if inside {
		return c.httpsClient(caPEM, admin), nil
	}
	return httpsClient(caPEM, admin), nil
}

// applyManifest applies YAML with the kube binary's kubectl and the admin kubeconfig.
func (c *cluster) applyManifest(manifest string) error {
	cmd := exec.Command(c.KubeBin, "kubectl", "--kubeconfig="+c.kubeconfigPath(), "apply",
		"--server-side", "--force-conflicts", "--field-manager=govdc-cluster", "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("kubectl apply of the cluster add-ons: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// nodeReady reports whether the Node's Ready condition is True, as its kubelet reported after
// since (a Node kept in etcd from an earlier run still says Ready).
func nodeReady(client *http.Client, server, name string, since time.Time) bool {
	var node struct {
		Status struct {
			Conditions []struct {
				Type          string    `json:"type"`
				Status        string    `json:"status"`
				LastHeartbeat time.Time `json:"lastHeartbeatTime"`
			} `json:"conditions"`
		} `json:"status"`
	}
	if !getJSON(client, server+"/api/v1/nodes/"+name, &node) {
		return false
	}
	for _, cond := range node.Status.Conditions {
		if cond.Type == "Ready" {
			return cond.Status == "True" && !cond.LastHeartbeat.Before(since.Truncate(time.Second))
		}
	}
	return false
}

// dnsQuery is a DNS query (id 0x6776, recursion desired) for the A record of name.
func dnsQuery(name string) []byte {
	q := []byte{0x67, 0x76, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		q = append(q, byte(len(label)))
		q = append(q, label...)
	}
	return append(q, 0, 0, 1, 0, 1)
}

// dnsAnswered reports whether reply answers dnsQuery's query without error, with a record.
func dnsAnswered(reply []byte) bool {
	return len(reply) >= 12 && reply[0] == 0x67 && reply[1] == 0x76 && reply[2]&0x80 != 0 &&
		reply[3]&0x0f == 0 && (int(reply[6])<<8|int(reply[7])) > 0
}

// dnsAnswers reports whether the cluster DNS Service answers for the kubernetes Service, asked
// from inside node 0's namespace: CoreDNS runs and kube-proxy's rules lead to it.
func (c *cluster) dnsAnswers() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := dialInNetns(ctx, netnsPath(nodeNetns(c.Name, 0)), "udp", net.JoinHostPort(dnsServiceIP, "53"))
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write(dnsQuery("kubernetes.default.svc." + clusterDomain)); err != nil {
		return false
	}
	buf := make([]byte, 512)
	n, err := conn.Read(buf)
	return err == nil && dnsAnswered(buf[:n])
}

func getJSON(client *http.Client, url string, into any) bool {
	resp, err := client.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(into) == nil
}

// importImage imports an OCI archive into node n's containerd, in the namespace the CRI uses.
func (c *cluster) importImage(n nodeSpec, archive string) error {
	base, err := archiveBaseName(archive)
	if err != nil {
		return err
	}
	args := []string{"--address", n.containerdSocket(), "-n", "k8s.io", "images", "import"}
	if base != "" {
		args = append(args, "--base-name", base)
	}
	args = append(args, archive)
	cmd := exec.Command(filepath.Join(c.BinDir, "ctr"), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("import %s into %s: %v: %s", archive, n.name(), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// stopNodes stops every node-side process, kills whatever else runs in the cluster's namespaces
// or the pods' cgroups (containers, shims), unmounts what lies under the cluster directory, and
// deletes the cgroups and the namespaces. It is safe to run on a cluster that is partly gone.
func (c *cluster) stopNodes(s state) error {
	var errs []error
	procs := c.nodeProcesses(s)
	// kubelet first, or it restarts the containers killed below.
	order := []string{}
	for i := range c.Nodes {
		order = append(order, "n"+strconv.Itoa(i)+"-kubelet")
	}
	for i := len(procs) - 1; i >= 0; i-- {
		if !slices.Contains(order, procs[i].key) {
			order = append(order, procs[i].key)
		}
	}
	byKey := map[string]nodeProcess{}
	for _, p := range procs {
		byKey[p.key] = p
	}
	for _, key := range order {
		p := byKey[key]
		if strings.HasSuffix(key, "-containerd") {
			// containerd's shims and containers go with the cgroups, before containerd itself.
			c.killPodCgroups()
		}
		stopped, err := stopComponent(p.args[0], c.pidFile(key), stopGrace)
		if err != nil {
			errs = append(errs, err)
		}
		if stopped {
			fmt.Fprintf(os.Stderr, "govdc-cluster: %s: stopped %s\n", c.Name, key)
		}
	}
	c.killPodCgroups()
	return errors.Join(errs...)
}

// killPodCgroups SIGKILLs every process in the nodes' cgroup roots.
func (c *cluster) killPodCgroups() {
	for i := range c.Nodes {
		root := "/" + nodeNetns(c.Name, i)
		for _, h := range cgroupHierarchies() {
			_ = filepath.WalkDir(filepath.Join(h, root), func(path string, d os.DirEntry, err error) error {
				if err != nil || !d.IsDir() {
					return nil
				}
				for _, pid := range readPids(filepath.Join(path, "cgroup.procs")) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
				return nil
			})
		}
	}
}

func readPids(file string) []int {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// removeNodeLeftovers kills what still runs in the cluster's namespaces, unmounts, removes the
// cgroups, deletes the namespaces and the files kubelet writes outside its root directory.
func (c *cluster) removeNodeLeftovers() []error {
	var errs []error
	inodes := map[uint64]bool{}
	for _, ns := range c.netnsNames() {
		if ino, ok := netnsInode(netnsPath(ns)); ok {
			inodes[ino] = true
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		c.killPodCgroups()
		pids := pidsInNetns(inodes)
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			errs = append(errs, fmt.Errorf("processes %v survive in the cluster's network namespaces", pids))
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(200 * time.Millisecond)
	}
	errs = append(errs, unmountUnder(c.Dir)...)
	for i := range c.Nodes {
		errs = append(errs, removeCgroupTree("/"+nodeNetns(c.Name, i))...)
	}
	for _, ns := range c.netnsNames() {
		if fileExists(netnsPath(ns)) {
			if err := runCmd("ip", "netns", "delete", ns); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// kubelet links every container log into /var/log/containers (a fixed path).
	links, _ := filepath.Glob("/var/log/containers/*.log")
	for _, l := range links {
		if target, err := os.Readlink(l); err == nil && strings.HasPrefix(target, c.Dir+string(filepath.Separator)) {
			_ = os.Remove(l)
		}
	}
	for i := range c.Nodes {
		removeCNICache(nodeNetns(c.Name, i))
		if err := os.RemoveAll(c.node(i, state{}).shimSocketDir()); err != nil {
			errs = append(errs, err)
		}
	}
	// The kubelet's device-plugin socket has a fixed path; it goes with the last node.
	if others, _ := filepath.Glob(netnsPath("govdc-*-n*")); len(others) == 0 {
		_ = os.Remove("/var/lib/kubelet/device-plugins/kubelet.sock")
		for _, d := range []string{"/var/lib/kubelet/device-plugins", "/var/lib/kubelet/pki", "/var/lib/kubelet", "/run/govdc"} {
			_ = syscall.Rmdir(d) // only when empty
		}
	}
	return errs
}

// cniCacheDir is where libcni caches each attachment's result; containerd offers no other place.
const cniCacheDir = "/var/lib/cni/results"

// removeCNICache removes the cached results of the network named network
// (<network>-<sandbox>-eth0) and of containerd's loopback network for the same sandboxes.
func removeCNICache(network string) {
	cached, _ := filepath.Glob(filepath.Join(cniCacheDir, network+"-*"))
	for _, f := range cached {
		id := strings.TrimPrefix(filepath.Base(f), network+"-")
		if i := strings.LastIndexByte(id, '-'); i > 0 {
			_ = os.Remove(filepath.Join(cniCacheDir, "cni-loopback-"+id[:i]+"-lo"))
		}
		_ = os.Remove(f)
	}
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(mountinfo, dir string) []string {
	var points []string
	for _, line := range strings.Split(mountinfo, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		point := unescapeMountPath(fields[4])
		if point == dir || strings.HasPrefix(point, dir+"/") {
			points = append(points, point)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	return slices.Compact(points)
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountUnder detaches every mount below dir (kubelet volumes, container root filesystems, pod
// network namespaces), deepest first, until none is left.
func unmountUnder(dir string) []error {
	for range 5 {
		data, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			return []error{err}
		}
		points := mountsUnder(string(data), dir)
		if len(points) == 0 {
			return nil
		}
		for _, p := range points {
			_ = syscall.Unmount(p, syscall.MNT_DETACH)
		}
	}
	data, _ := os.ReadFile("/proc/self/mountinfo")
	if left := mountsUnder(string(data), dir); len(left) > 0 {
		return []error{fmt.Errorf("mounts left under %s: %v", dir, left)}
	}
	return nil
}

// removeCgroupTree removes root and everything below it in every hierarchy, deepest first.
func removeCgroupTree(root string) []error {
	var errs []error
	for _, h := range cgroupHierarchies() {
		top := filepath.Join(h, root)
		var dirs []string
		_ = filepath.WalkDir(top, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			var err error
			for range 20 {
				if err = syscall.Rmdir(dirs[i]); err == nil || errors.Is(err, syscall.ENOENT) {
					err = nil
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", dirs[i], err))
			}
		}
	}
	return errs
}

// cmdForward is the forwarder process (`govdc-cluster forward`, started by up).
func cmdForward(args []string) error {
	c := newCommand(forwarder)
	nsPath := c.fs.String("netns", "", "network namespace to dial into")
	listen := c.fs.String("listen", "", "address to listen on, in this process's namespace")
	to := c.fs.String("to", "", "address to connect to, inside --netns")
	if err := c.fs.Parse(args); err != nil {
		return err
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		l.Close()
	}()
	return forward(l, *nsPath, *to)
}

// nodeControllers are the controller-manager's controllers a cluster with nodes adds: node
// health and eviction, pod clean-up, volumes, DaemonSets and the Endpoints some clients read.
var nodeControllers = []string{
	"node-lifecycle-controller",
	"taint-eviction-controller",
	"pod-garbage-collector-controller",
	"ttl-controller",
	"daemonset-controller",
	"endpoints-controller",
	"persistentvolume-binder-controller",
	"persistentvolume-protection-controller",
	"persistentvolume-attach-detach-controller",
	"ephemeral-volume-controller",
}

// setFlag replaces --name=... in args, or appends it.
func setFlag(args []string, name, value string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		if strings.HasPrefix(a, "--"+name+"=") {
			out[i] = "--" + name + "=" + value
			return out
		}
	}
	return append(out, "--"+name+"="+value)
}

// withNodesAPIServerArgs turns the API server's arguments into those of a cluster with nodes: it
// listens inside the cluster's namespace (on the LAN too, for kubelets and pods) and advertises
// the LAN address as the kubernetes Service's endpoint (the lease reconciler, off without nodes
// because 127.0.0.1 is no valid endpoint); the Node authorizer and NodeRestriction confine each
// kubelet to its own Node and pods; it reaches kubelets (logs, exec) with a client certificate.
func withNodesAPIServerArgs(args []string, p pki) []string {
	args = setFlag(args, "bind-address", "0.0.0.0")
	args = setFlag(args, "advertise-address", controlPlaneIP)
	args = setFlag(args, "endpoint-reconciler-type", "lease")
	args = setFlag(args, "authorization-mode", "Node,RBAC")
	args = setFlag(args, "enable-admission-plugins", strings.Join(append(slices.Clone(admissionPlugins), "NodeRestriction"), ","))
	args = setFlag(args, "kubelet-client-certificate", p.path("apiserver-kubelet-client.crt"))
	args = setFlag(args, "kubelet-client-key", p.path("apiserver-kubelet-client.key"))
	args = setFlag(args, "kubelet-preferred-address-types", "InternalIP")
	return args
}

// withNodesControllerManagerArgs adds the node controllers.
func withNodesControllerManagerArgs(args []string) []string {
	return setFlag(args, "controllers", strings.Join(append(slices.Clone(controllers), nodeControllers...), ","))
}

// ensureNodePKI adds what a cluster with nodes needs to the PKI: the API server's LAN address in
// its serving certificate (a cluster first made without nodes lacks it), and the API server's
// client certificate for kubelets.
func (c *cluster) ensureNodePKI() error {
	p := c.pki()
	ca, err := p.CA()
	if err != nil {
		return err
	}
	serving, err := loadKeyPair(p.APIServerCert(), p.APIServerKey())
	if err != nil {
		return err
	}
	lan := net.ParseIP(controlPlaneIP)
	if !slices.ContainsFunc(serving.Cert.IPAddresses, lan.Equal) {
		kp, err := ca.issue(certSpec{
			CommonName: "kube-apiserver",
			DNSNames:   apiServerDNSNames,
			IPs:        append(slices.Clone(serving.Cert.IPAddresses), lan),
			Usages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			return err
		}
		if err := kp.save(p.APIServerCert(), p.APIServerKey()); err != nil {
			return err
		}
	}
	cert, key := p.path("apiserver-kubelet-client.crt"), p.path("apiserver-kubelet-client.key")
	if fileExists(cert) && fileExists(key) {
		return nil
	}
	kp, err := ca.clientCert("kube-apiserver-kubelet-client", "system:masters")
	if err != nil {
		return err
	}
	return kp.save(cert, key)
}

// plainClient is an HTTP client for etcd's health endpoint (inside the namespace with nodes).
func (c *cluster) plainClient() *http.Client {
	hc := &http.Client{Timeout: 2 * time.Second}
	if c.Nodes > 0 {
		hc.Transport = &http.Transport{DialContext: netnsDialer(netnsPath(clusterNetns(c.Name))), DisableKeepAlives: true}
	}
	return hc
}

// downNodes stops a cluster with nodes as recorded in s and removes everything it left.
func (c *cluster) downNodes(s state) error {
	cc := *c
	cc.Nodes = s.Nodes
	if cc.BinDir == "" {
		cc.BinDir = filepath.Dir(s.KubeBinary)
	}
	errs := []error{cc.stopNodes(s), stopAll(&cc)}
	errs = append(errs, cc.removeNodeLeftovers()...)
	return errors.Join(errs...)
}
