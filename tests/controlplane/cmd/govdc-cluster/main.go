// Command govdc-cluster runs local Kubernetes control planes (etcd, kube-apiserver and
// kube-controller-manager from the kube multicall binary) on 127.0.0.1, one per named cluster,
// for govdc's tests and demos. By default there is no scheduler and no kubelet: Pods stay
// Pending. With --nodes N, the cluster runs in network namespaces of its own with kube-scheduler
// and N nodes (containerd, runc, kubelet, kube-proxy, CNI bridge, CoreDNS, a NetworkPolicy
// enforcer); see nodes.go.
//
//	govdc-cluster up NAME [--nodes N]      start (or reuse) a cluster, print its kubeconfig path
//	govdc-cluster load NAME ARCHIVE...     import OCI image archives into every node
//	govdc-cluster link FROM TO [--out FILE] let FROM's pods reach TO's API server (link.go)
//	govdc-cluster down NAME [--purge]      stop it; --purge also deletes its data
//	govdc-cluster status                   list clusters and their components
//	govdc-cluster kubeconfig NAME          print the admin kubeconfig path
//	govdc-cluster user NAME --user U [--group G]... --out FILE
//	                                       write a kubeconfig for an unprivileged user
//
// Every command takes --root DIR (default $GOVDC_CLUSTERS_DIR, else target/clusters in the
// enclosing git work tree, else in the current directory). up takes --kube PATH (default
// $GOVDC_KUBE_BIN, else "kube" beside this executable).
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
)

const usage = `usage:
  govdc-cluster up NAME [--nodes N] [--root DIR] [--kube PATH]
  govdc-cluster load NAME ARCHIVE... [--root DIR]
  govdc-cluster link FROM TO [--out FILE] [--root DIR]
  govdc-cluster down NAME [--purge] [--root DIR]
  govdc-cluster status [--root DIR]
  govdc-cluster kubeconfig NAME [--root DIR]
  govdc-cluster user NAME --user USER [--group GROUP]... --out FILE [--root DIR]
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "up":
		err = cmdUp(args)
	case "down":
		err = cmdDown(args)
	case "load":
		err = cmdLoad(args)
	case "link":
		err = cmdLink(args)
	case forwarder: // started by up for a cluster with nodes
		err = cmdForward(args)
	case "status":
		err = cmdStatus(args)
	case "kubeconfig":
		err = cmdKubeconfig(args)
	case "user":
		err = cmdUser(args)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		err = fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stderr, "govdc-cluster %s: %v\n", cmd, err)
		}
		os.Exit(1)
	}
}

// command holds the flags every command shares.
type command struct {
	fs   *flag.FlagSet
	root string
}

func newCommand(name string) *command {
	c := &command{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	c.fs.StringVar(&c.root, "root", "", "directory holding the clusters (default $GOVDC_CLUSTERS_DIR or <repo>/target/clusters)")
	return c
}

// parse parses flags anywhere among args and returns the positional arguments; want is how
// many positional arguments the command takes (-N: at least N).
func (c *command) parse(args []string, want int) ([]string, error) {
	var pos []string
	for {
		if err := c.fs.Parse(args); err != nil {
			return nil, err
		}
		args = c.fs.Args()
		if len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	if want < 0 && len(pos) < -want {
		return nil, fmt.Errorf("want at least %d arguments, got %d: %q\n%s", -want, len(pos), pos, usage)
	}
	if want >= 0 && len(pos) != want {
		return nil, fmt.Errorf("want %d argument(s), got %d: %q\n%s", want, len(pos), pos, usage)
	}
	root, err := clustersRoot(c.root)
	if err != nil {
		return nil, err
	}
	c.root = root
	return pos, nil
}

// clusters returns the named cluster under the root.
func (c *command) cluster(name string) (*cluster, error) { return newCluster(c.root, name) }

func cmdUp(args []string) error {
	c := newCommand("up")
	kube := c.fs.String("kube", "", "path of the kube multicall binary (default $GOVDC_KUBE_BIN or kube beside govdc-cluster)")
	nodes := c.fs.Int("nodes", 0, "also run kube-scheduler and this many nodes, in network namespaces of the cluster's own")
	gates := c.fs.String("feature-gates", "", "kube-apiserver feature gates, NAME=true|false,... (for example WatchList=false)")
	pos, err := c.parse(args, 1)
	if err != nil {
		return err
	}
	if *nodes < 0 || *nodes > maxNodes {
		return fmt.Errorf("--nodes %d: want 0 to %d", *nodes, maxNodes)
	}
	if *gates != "" && !validFeatureGates.MatchString(*gates) {
		return fmt.Errorf("--feature-gates %q: want NAME=true|false, comma-separated", *gates)
	}
	cl, err := c.cluster(pos[0])
	if err != nil {
		return err
	}
	kubeBin, err := kubeBinary(*kube)
	if err != nil {
		return err
	}
	cl.Nodes, cl.KubeBin, cl.FeatureGates = *nodes, kubeBin, *gates
	if cl.BinDir, err = selfDir(); err != nil {
		return err
	}
	path, err := up(c.root, kubeBin, cl)
	if err != nil {
		return err
	}
	fmt.Println(path)
	return nil
}

func cmdDown(args []string) error {
	c := newCommand("down")
	purge := c.fs.Bool("purge", false, "also delete the cluster's directory: etcd data, PKI, kubeconfigs, logs")
	pos, err := c.parse(args, 1)
	if err != nil {
		return err
	}
	cl, err := c.cluster(pos[0])
	if err != nil {
		return err
	}
	return down(cl, *purge)
}

func cmdStatus(args []string) error {
	c := newCommand("status")
	if _, err := c.parse(args, 0); err != nil {
		return err
	}
	entries, err := os.ReadDir(c.root)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tETCD\tAPISERVER\tCONTROLLER-MANAGER\tNODES\tSERVER\tKUBECONFIG")
	for _, e := range entries {
		cl, err := c.cluster(e.Name())
		if !e.IsDir() || err != nil || !fileExists(cl.statePath()) {
			continue
		}
		s, err := cl.loadState()
		if err != nil {
			return err
		}
		run := cl.running()
		word := func(comp string) string {
			if run[comp] {
				return "running"
			}
			return "stopped"
		}
		nodes := "-"
		if s.Nodes > 0 {
			cl.Nodes, cl.BinDir = s.Nodes, filepath.Dir(s.KubeBinary)
			nodes = fmt.Sprintf("%d (%s)", s.Nodes, map[bool]string{true: "running", false: "stopped"}[cl.nodesRunning(s)])
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cl.Name,
			word(etcd), word(apiServer), word(controllerManager), nodes, s.Server, cl.kubeconfigPath())
	}
	return w.Flush()
}

func cmdLoad(args []string) error {
	c := newCommand("load")
	pos, err := c.parse(args, -2)
	if err != nil {
		return err
	}
	cl, err := c.cluster(pos[0])
	if err != nil {
		return err
	}
	if cl.BinDir, err = selfDir(); err != nil {
		return err
	}
	return load(cl, pos[1:])
}

// selfDir is the directory of this executable, where build.sh puts the node binaries.
func selfDir() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	if resolved, err := filepath.EvalSymlinks(self); err == nil {
		self = resolved
	}
	return filepath.Dir(self), nil
}

func cmdKubeconfig(args []string) error {
	c := newCommand("kubeconfig")
	pos, err := c.parse(args, 1)
	if err != nil {
		return err
	}
	cl, err := c.cluster(pos[0])
	if err != nil {
		return err
	}
	if !fileExists(cl.kubeconfigPath()) {
		return fmt.Errorf("%s does not exist; run: govdc-cluster up %s", cl.kubeconfigPath(), cl.Name)
	}
	fmt.Println(cl.kubeconfigPath())
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func cmdUser(args []string) error {
	c := newCommand("user")
	user := c.fs.String("user", "", "user name (certificate CN)")
	out := c.fs.String("out", "", "kubeconfig file to write")
	var groups stringList
	c.fs.Var(&groups, "group", "group (certificate O); repeatable")
	pos, err := c.parse(args, 1)
	if err != nil {
		return err
	}
	if *user == "" || *out == "" {
		return fmt.Errorf("--user and --out are required\n%s", usage)
	}
	cl, err := c.cluster(pos[0])
	if err != nil {
		return err
	}
	s, err := cl.loadState()
	if err != nil {
		return err
	}
	if s.Server == "" {
		return fmt.Errorf("cluster %q has never been started; run: govdc-cluster up %s", cl.Name, cl.Name)
	}
	ca, err := cl.pki().CA()
	if err != nil {
		return err
	}
	client, err := ca.clientCert(*user, groups...)
	if err != nil {
		return err
	}
	kc := kubeconfig{Cluster: cl.Name, User: *user, Server: s.Server, CAPEM: ca.CertPEM, Client: client}
	if err := kc.write(*out); err != nil {
		return err
	}
	fmt.Println(*out)
	return nil
}

// clustersRoot resolves the clusters directory: the flag, then $GOVDC_CLUSTERS_DIR, then
// target/clusters in the enclosing git work tree, then in the current directory.
func clustersRoot(flagValue string) (string, error) {
	root := flagValue
	if root == "" {
		root = os.Getenv("GOVDC_CLUSTERS_DIR")
	}
	if root == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		base := wd
		for dir := wd; ; dir = filepath.Dir(dir) {
			if fileExists(filepath.Join(dir, ".git")) {
				base = dir
				break
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
		root = filepath.Join(base, "target", "clusters")
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return "", err
	}
	return root, os.MkdirAll(root, 0o755)
}

// kubeBinary resolves the kube multicall binary: the flag, then $GOVDC_KUBE_BIN, then kube
// beside this executable.
func kubeBinary(flagValue string) (string, error) {
	bin := flagValue
	if bin == "" {
		bin = os.Getenv("GOVDC_KUBE_BIN")
	}
	if bin == "" {
		self, err := os.Executable()
		if err != nil {
			return "", err
		}
		if resolved, err := filepath.EvalSymlinks(self); err == nil {
			self = resolved
		}
		bin = filepath.Join(filepath.Dir(self), "kube")
	}
	return filepath.Abs(bin)
}
