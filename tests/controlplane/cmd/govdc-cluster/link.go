package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// `govdc-cluster link FROM TO`: lets FROM's pods reach TO's API server, as a workload in one data
// center reaches another's (govdc's BackupPolicy replicates to a DR cluster). Clusters with nodes
// never see each other otherwise. A forwarder (`govdc-cluster forward`) runs in FROM's cluster
// namespace, listens on FROM's control-plane address 10.89.0.1 at TO's API server port (ports of
// running clusters never collide) and dials TO's API server inside TO's namespace. TO's serving
// certificate already names 10.89.0.1 (each cluster's own LAN address), so the kubeconfig written
// for FROM's pods is TO's admin kubeconfig with that server. The forwarder lives in FROM's
// namespace, so `down FROM` ends it with FROM's other processes.

// linkComponent names the link's pid and log files in FROM's directory.
func linkComponent(to string) string { return "link-" + to }

func cmdLink(args []string) error {
	c := newCommand("link")
	out := c.fs.String("out", "", "where to write the kubeconfig of TO for FROM's pods (default FROM's directory/link-TO.kubeconfig)")
	pos, err := c.parse(args, 2)
	if err != nil {
		return err
	}
	if pos[0] == pos[1] {
		return fmt.Errorf("a cluster's pods reach their own API server as kubernetes.default")
	}
	from, err := c.cluster(pos[0])
	if err != nil {
		return err
	}
	to, err := c.cluster(pos[1])
	if err != nil {
		return err
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	path := *out
	if path == "" {
		path = from.path(linkComponent(to.Name) + ".kubeconfig")
	}
	if err := link(from, to, bin, path); err != nil {
		return err
	}
	fmt.Println(path)
	return nil
}

// link starts (or keeps) the forwarder from `from`'s namespace to `to`'s API server and writes
// the kubeconfig for `from`'s pods to out.
func link(from, to *cluster, bin, out string) error {
	fs, err := from.loadState()
	if err != nil {
		return err
	}
	ts, err := to.loadState()
	if err != nil {
		return err
	}
	for _, x := range []struct {
		c *cluster
		s state
	}{{from, fs}, {to, ts}} {
		x.c.Nodes = x.s.Nodes
		if x.s.Nodes == 0 {
			return fmt.Errorf("cluster %q has no nodes (no network namespace to link); start it with: govdc-cluster up %s --nodes 1", x.c.Name, x.c.Name)
		}
		if !x.c.nodesRunning(x.s) {
			return fmt.Errorf("cluster %q is not running; run: govdc-cluster up %s --nodes %d", x.c.Name, x.c.Name, x.s.Nodes)
		}
	}
	port := strconv.Itoa(ts.Ports.APIServer)
	listen := net.JoinHostPort(controlPlaneIP, port)
	component := linkComponent(to.Name)
	pidFile, logFile := from.pidFile(component), from.logFile(component)
	args := []string{forwarder, "--netns=" + netnsPath(clusterNetns(to.Name)),
		"--listen=" + listen, "--to=" + net.JoinHostPort("127.0.0.1", port)}
	if !componentAlive(readPid(pidFile), forwarder) || !linkArgsMatch(readPid(pidFile), args) {
		if pid := readPid(pidFile); componentAlive(pid, forwarder) {
			if _, err := stopComponent(forwarder, pidFile, 2*time.Second); err != nil {
				return err
			}
		}
		p, err := startDetachedIn(clusterNetns(from.Name), bin, args, from.Dir, logFile, pidFile, nil)
		if err != nil {
			return err
		}
		if err := waitFor(component, 10*time.Second, p, logFile, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			conn, err := dialInNetns(ctx, netnsPath(clusterNetns(from.Name)), "tcp", listen)
			if err == nil {
				conn.Close()
			}
			return err == nil
		}); err != nil {
			return err
		}
	}
	kubeconfig, err := os.ReadFile(to.kubeconfigPath())
	if err != nil {
		return err
	}
	inside, err := linkKubeconfig(string(kubeconfig), ts.Server, "https://"+listen)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	return writeFileAtomic(out, []byte(inside), 0o600)
}

// linkKubeconfig is kubeconfig with its server (JSON-quoted, as render writes it) replaced.
func linkKubeconfig(kubeconfig, server, inside string) (string, error) {
	quoted := strconv.Quote(server)
	if strings.Count(kubeconfig, "server: "+quoted) != 1 {
		return "", fmt.Errorf("the kubeconfig does not name its server %s once", server)
	}
	return strings.Replace(kubeconfig, "server: "+quoted, "server: "+strconv.Quote(inside), 1), nil
}

// linkArgsMatch reports whether pid runs with exactly args (a link to a cluster that moved to
// another port is restarted).
func linkArgsMatch(pid int, args []string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	got := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
	return len(got) == len(args)+1 && strings.Join(got[1:], "\x00") == strings.Join(args, "\x00")
}
