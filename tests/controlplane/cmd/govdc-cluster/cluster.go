package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// Component names, as the kube multicall binary takes them.
const (
	etcd              = "etcd"
	apiServer         = "kube-apiserver"
	controllerManager = "kube-controller-manager"
)

// components in start order; `down` stops them in reverse.
var components = []string{etcd, apiServer, controllerManager}

var validName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$`)

// validFeatureGates is the form `up --feature-gates` takes.
var validFeatureGates = regexp.MustCompile(`^[A-Za-z0-9]+=(true|false)(,[A-Za-z0-9]+=(true|false))*$`)

// cluster is one control plane: a directory under the clusters root holding its PKI, etcd
// data, kubeconfigs, logs, pid files and cluster.json.
type cluster struct {
	Name string
	Dir  string
	// Nodes is how many nodes the cluster has (0: a control plane only, in the machine's network
	// namespace). Set from `up --nodes`, or from cluster.json for the other commands.
	Nodes int
	// BinDir holds the node binaries and images (beside govdc-cluster); KubeBin is the kube
	// multicall binary. Both are only needed for clusters with nodes.
	BinDir  string
	KubeBin string
	// FeatureGates are kube-apiserver feature gates (`up --feature-gates`, for example
	// WatchList=false): a test of how govdc meets a server with a feature off.
	FeatureGates string
}

func newCluster(root, name string) (*cluster, error) {
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("invalid cluster name %q: use lower-case letters, digits and '-'", name)
	}
	return &cluster{Name: name, Dir: filepath.Join(root, name)}, nil
}

func (c *cluster) path(elem ...string) string {
	return filepath.Join(append([]string{c.Dir}, elem...)...)
}

func (c *cluster) pki() pki               { return pki{dir: c.path("pki")} }
func (c *cluster) kubeconfigPath() string { return c.path("kubeconfig") }
func (c *cluster) controllerManagerKubeconfig() string {
	return c.path("controller-manager.kubeconfig")
}
func (c *cluster) statePath() string               { return c.path("cluster.json") }
func (c *cluster) pidFile(component string) string { return c.path(component + ".pid") }
func (c *cluster) logFile(component string) string { return c.path("logs", component+".log") }

// auditLog is where the API server records every write: who made it, when, to what (the
// Metadata level: never a request's body, so no Secret's data). Tests read it to tell which
// client wrote.
func (c *cluster) auditLog() string    { return c.path("logs", "audit.log") }
func (c *cluster) auditPolicy() string { return c.path("audit-policy.yaml") }

// auditPolicy records writes at the Metadata level and nothing else.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
  - level: None
`

func (c *cluster) writeAuditPolicy() error {
	if err := os.MkdirAll(c.path("logs"), 0o755); err != nil {
		return err
	}
	return writeFileAtomic(c.auditPolicy(), []byte(auditPolicy), 0o644)
}

// ports are the loopback TCP ports a cluster listens on. They are kept across restarts, so
// kubeconfigs stay valid, unless another process has taken one meanwhile.
type ports struct {
	EtcdClient        int `json:"etcdClient"`
	EtcdPeer          int `json:"etcdPeer"`
	APIServer         int `json:"apiServer"`
	ControllerManager int `json:"controllerManager"`
}

func (p ports) list() []int { return []int{p.EtcdClient, p.EtcdPeer, p.APIServer, p.ControllerManager} }

// state is cluster.json.
type state struct {
	Name         string         `json:"name"`
	Server       string         `json:"server"`
	Kubeconfig   string         `json:"kubeconfig"`
	KubeBinary   string         `json:"kubeBinary"`
	Ports        ports          `json:"ports"`
	PIDs         map[string]int `json:"pids,omitempty"`
	StartedAt    time.Time      `json:"startedAt"`
	Nodes        int            `json:"nodes,omitempty"`
	FeatureGates string         `json:"featureGates,omitempty"`
	ReadySeconds float64        `json:"readySeconds,omitempty"`
}

// loadState reads cluster.json; a missing file gives a zero state and no error.
func (c *cluster) loadState() (state, error) {
	var s state
	data, err := os.ReadFile(c.statePath())
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("%s: %w", c.statePath(), err)
	}
	return s, nil
}

func (c *cluster) saveState(s state) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(c.statePath(), append(data, '\n'), 0o644)
}

// running returns, per component, whether its recorded process is alive.
func (c *cluster) running() map[string]bool {
	up := map[string]bool{}
	for _, comp := range components {
		up[comp] = componentAlive(readPid(c.pidFile(comp)), comp)
	}
	return up
}

// The ports clusters listen on: below Linux's ephemeral range (32768-60999), from which the
// kernel picks the local port of every outgoing connection, and below the range the Rust test
// support hands to test servers (20000-32000). A component killed on an ephemeral port can have
// its port taken at once by some client's connection (its own clients reconnecting), and the
// restarted cluster would move to another port under the feet of every client holding the
// old kubeconfig.
const clusterPortsFrom, clusterPortsTo = 10000, 20000

// allocatePorts keeps the ports in prev that are still free and replaces the others with free
// ports that no other cluster under root has recorded. Hold the root lock while calling it and
// until the result is saved in cluster.json, so clusters started in parallel never collide.
func allocatePorts(root, self string, prev ports) (ports, error) {
	taken := map[int]bool{}
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if !e.IsDir() || e.Name() == self {
			continue
		}
		other := cluster{Name: e.Name(), Dir: filepath.Join(root, e.Name())}
		if s, err := other.loadState(); err == nil {
			for _, p := range s.Ports.list() {
				taken[p] = true
			}
		}
	}
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	pick := func(want int) (int, error) {
		if want > 0 && !taken[want] {
			// The cluster's own port of its previous run: a component killed a moment ago may
			// still be releasing it, so wait a little before moving (which would strand every
			// client holding the old kubeconfig).
			for attempt := 0; attempt < 50; attempt++ {
				if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(want))); err == nil {
					held = append(held, l)
					taken[want] = true
					return want, nil
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		span := clusterPortsTo - clusterPortsFrom
		start := int(crc32.ChecksumIEEE([]byte(self))) % span
		for i := range span {
			p := clusterPortsFrom + (start+i)%span
			if taken[p] {
				continue
			}
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				continue
			}
			held = append(held, l)
			taken[p] = true
			return p, nil
		}
		return 0, fmt.Errorf("no free port on 127.0.0.1 in %d-%d", clusterPortsFrom, clusterPortsTo-1)
	}
	var next ports
	var err error
	for _, f := range []struct {
		dst  *int
		want int
	}{
		{&next.EtcdClient, prev.EtcdClient},
		{&next.EtcdPeer, prev.EtcdPeer},
		{&next.APIServer, prev.APIServer},
		{&next.ControllerManager, prev.ControllerManager},
	} {
		if *f.dst, err = pick(f.want); err != nil {
			return ports{}, err
		}
	}
	return next, nil
}

// httpsClient is httpsClient for this cluster: with nodes, it dials inside the cluster's network
// namespace, where the control plane listens.
func (c *cluster) httpsClient(caPEM []byte, client *keyPair) *http.Client {
	hc := httpsClient(caPEM, client)
	if c.Nodes > 0 {
		hc.Transport.(*http.Transport).DialContext = netnsDialer(netnsPath(clusterNetns(c.Name)))
	}
	return hc
}

// httpsClient trusts the cluster CA and, if client is set, presents that certificate.
func httpsClient(caPEM []byte, client *keyPair) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if client != nil {
		cfg.Certificates = []tls.Certificate{{
			Certificate: [][]byte{client.Cert.Raw},
			PrivateKey:  client.Key,
		}}
	}
	return &http.Client{
		Timeout:   3 * time.Second,
		Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true},
	}
}

// probe reports whether GET url answers 200.
func probe(client *http.Client, url string) bool {
	resp, err := client.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// apiReady reports whether the cluster's apiserver answers /readyz for the admin user.
func (c *cluster) apiReady(s state) bool {
	if s.Server == "" {
		return false
	}
	p := c.pki()
	caPEM, err := os.ReadFile(p.CACert())
	if err != nil {
		return false
	}
	admin, err := loadKeyPair(p.AdminCert(), p.AdminKey())
	if err != nil {
		return false
	}
	return probe(httpsClient(caPEM, admin), s.Server+"/readyz")
}

// waitFor polls ok every 250ms until it succeeds, the process p exits, or timeout passes.
func waitFor(what string, timeout time.Duration, p *process, logFile string, ok func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if ok() {
			return nil
		}
		if p != nil {
			select {
			case <-p.exited:
				return fmt.Errorf("%s: process exited (%v); last log lines of %s:\n%s",
					what, p.err, logFile, tailFile(logFile, 25))
			default:
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not ready after %s; last log lines of %s:\n%s",
				what, timeout, logFile, tailFile(logFile, 25))
		}
		time.Sleep(250 * time.Millisecond)
	}
}
