package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Timeouts for `up` on a busy 2-core machine.
const (
	etcdTimeout              = 60 * time.Second
	apiServerTimeout         = 120 * time.Second
	controllerManagerTimeout = 90 * time.Second
	stopGrace                = 20 * time.Second
)

// Fixed cluster-wide settings.
const (
	serviceCIDR          = "10.0.0.0/24"
	serviceAccountIssuer = "https://kubernetes.default.svc.cluster.local"
	etcdQuotaBytes       = 4 << 30
)

// admissionPlugins are enabled on top of the apiserver's default set (which already holds
// them all in 1.36); naming them makes the intent explicit and guards against a default change.
var admissionPlugins = []string{
	"NamespaceLifecycle", "LimitRanger", "ServiceAccount", "PodSecurity", "ResourceQuota",
	"MutatingAdmissionWebhook", "ValidatingAdmissionWebhook", "ValidatingAdmissionPolicy",
}

// controllers run by kube-controller-manager: what an operator test needs from a cluster that
// has no nodes (garbage collection, namespace deletion, service accounts, workload objects).
// clusterrole-aggregation-controller fills the aggregated admin/edit/view ClusterRoles;
// persistentvolumeclaim-protection-controller lifts the finalizer of the claims StatefulSets make
// once no pod uses them, or deleting their namespace never finishes.
var controllers = []string{
	"garbage-collector-controller",
	"namespace-controller",
	"serviceaccount-controller",
	"serviceaccount-token-controller",
	"root-ca-certificate-publisher-controller",
	"clusterrole-aggregation-controller",
	"resourcequota-controller",
	"deployment-controller",
	"replicaset-controller",
	"statefulset-controller",
	"persistentvolumeclaim-protection-controller",
	"endpointslice-controller",
	"job-controller",
	"cronjob-controller",
	"ttl-after-finished-controller",
	"disruption-controller",
	"service-cidr-controller",
	"validatingadmissionpolicy-status-controller",
}

// up starts the cluster, or does nothing if it already runs and is ready. It returns the
// admin kubeconfig path.
func up(root, kubeBin string, c *cluster) (string, error) {
	if _, err := os.Stat(kubeBin); err != nil {
		return "", fmt.Errorf("kube binary: %w (build it with tests/controlplane/build.sh, or pass --kube)", err)
	}
	if c.Nodes > 0 {
		// Before anything is made: a machine that cannot run nodes is told so at once.
		if missing := missingPrerequisites(machinePrerequisites(c.BinDir)); len(missing) > 0 {
			return "", fmt.Errorf("a cluster with nodes needs what this machine lacks:\n  %s", strings.Join(missing, "\n  "))
		}
	}
	if err := os.MkdirAll(c.path("logs"), 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(c.path(".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()

	prev, err := c.loadState()
	if err != nil {
		return "", err
	}
	run := c.running()
	if run[etcd] && run[apiServer] && run[controllerManager] && prev.Nodes != c.Nodes {
		return "", fmt.Errorf("%s runs with %d node(s), not %d; run govdc-cluster down %s first", c.Name, prev.Nodes, c.Nodes, c.Name)
	}
	if run[etcd] && run[apiServer] && run[controllerManager] && prev.FeatureGates != c.FeatureGates {
		return "", fmt.Errorf("%s runs with feature gates %q, not %q; run govdc-cluster down %s first", c.Name, prev.FeatureGates, c.FeatureGates, c.Name)
	}
	if run[etcd] && run[apiServer] && run[controllerManager] && c.apiReady(prev) && (c.Nodes == 0 || c.nodesRunning(prev)) {
		fmt.Fprintf(os.Stderr, "govdc-cluster: %s already running at %s\n", c.Name, prev.Server)
		return c.kubeconfigPath(), nil
	}
	if prev.Nodes > 0 {
		// Whatever is left of a cluster with nodes goes entirely: its namespaces are rebuilt.
		if err := c.downNodes(prev); err != nil {
			return "", err
		}
	} else if run[etcd] || run[apiServer] || run[controllerManager] {
		fmt.Fprintf(os.Stderr, "govdc-cluster: %s is partly running, restarting it\n", c.Name)
		if err := stopAll(c); err != nil {
			return "", err
		}
	}

	start := time.Now()
	p := c.pki()
	if err := p.ensure(c.Name); err != nil {
		return "", err
	}
	s, err := c.reservePorts(root, prev)
	if err != nil {
		return "", err
	}
	s.KubeBinary, s.StartedAt, s.Nodes, s.FeatureGates = kubeBin, start, c.Nodes, c.FeatureGates
	if err := c.writeKubeconfigs(s.Server); err != nil {
		return "", err
	}
	if err := c.writeAuditPolicy(); err != nil {
		return "", err
	}
	if err := c.saveState(s); err != nil {
		return "", err
	}
	if c.Nodes > 0 {
		if err := c.ensureNodePKI(); err != nil {
			return "", err
		}
		if err := c.setupNetwork(); err != nil {
			_ = c.downNodes(s)
			return "", err
		}
	}

	started, err := c.startAll(kubeBin, &s, start)
	if err == nil && c.Nodes > 0 {
		err = c.startNodes(&s, start)
	}
	if err != nil {
		if c.Nodes > 0 {
			_ = c.saveState(s)
			fmt.Fprintf(os.Stderr, "govdc-cluster: %s failed to start; its logs stay in %s (govdc-cluster down %s clears the rest)\n", c.Name, c.path("logs"), c.Name)
			_ = c.downNodes(s)
			return "", err
		}
		for i := len(started) - 1; i >= 0; i-- {
			_, _ = stopComponent(started[i], c.pidFile(started[i]), stopGrace)
		}
		return "", err
	}
	s.ReadySeconds = time.Since(start).Seconds()
	if err := c.saveState(s); err != nil {
		return "", err
	}
	return c.kubeconfigPath(), nil
}

// reservePorts picks the cluster's ports under the root lock and records them in cluster.json
// before the lock is released.
func (c *cluster) reservePorts(root string, prev state) (state, error) {
	unlock, err := lockFile(filepath.Join(root, ".ports.lock"))
	if err != nil {
		return state{}, err
	}
	defer unlock()
	pts, err := allocatePorts(root, c.Name, prev.Ports)
	if err != nil {
		return state{}, err
	}
	if prev.Ports != (ports{}) && pts != prev.Ports {
		fmt.Fprintf(os.Stderr, "govdc-cluster: %s: some ports were taken, moved from %+v to %+v\n", c.Name, prev.Ports, pts)
	}
	s := state{
		Name:       c.Name,
		Server:     "https://127.0.0.1:" + strconv.Itoa(pts.APIServer),
		Kubeconfig: c.kubeconfigPath(),
		Ports:      pts,
	}
	return s, c.saveState(s)
}

// writeKubeconfigs (re)writes the admin and controller-manager kubeconfigs for server.
func (c *cluster) writeKubeconfigs(server string) error {
	p := c.pki()
	caPEM, err := os.ReadFile(p.CACert())
	if err != nil {
		return err
	}
	for _, k := range []struct{ user, cert, key, path string }{
		{c.Name, p.AdminCert(), p.AdminKey(), c.kubeconfigPath()},
		{"system:kube-controller-manager", p.ControllerManagerCert(), p.ControllerManagerKey(), c.controllerManagerKubeconfig()},
	} {
		client, err := loadKeyPair(k.cert, k.key)
		if err != nil {
			return err
		}
		kc := kubeconfig{Cluster: c.Name, User: k.user, Server: server, CAPEM: caPEM, Client: client}
		if err := kc.write(k.path); err != nil {
			return err
		}
	}
	return nil
}

// startAll starts etcd, kube-apiserver and kube-controller-manager in turn, each once the
// previous one is ready. It returns the components it started, also on error.
func (c *cluster) startAll(kubeBin string, s *state, start time.Time) ([]string, error) {
	p := c.pki()
	caPEM, err := os.ReadFile(p.CACert())
	if err != nil {
		return nil, err
	}
	admin, err := loadKeyPair(p.AdminCert(), p.AdminKey())
	if err != nil {
		return nil, err
	}
	adminClient := c.httpsClient(caPEM, admin)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(s.Ports.EtcdClient)
	kcmURL := "https://127.0.0.1:" + strconv.Itoa(s.Ports.ControllerManager)

	steps := []struct {
		component string
		args      []string
		timeout   time.Duration
		ready     func() bool
	}{
		{etcd, c.etcdArgs(s.Ports), etcdTimeout, func() bool {
			return probe(c.plainClient(), etcdURL+"/health")
		}},
		{apiServer, c.apiServerArgs(s.Ports), apiServerTimeout, func() bool {
			return probe(adminClient, s.Server+"/readyz")
		}},
		// Ready once its /healthz answers and its serviceaccount controller has made the
		// default ServiceAccount, so Pods can be created right away.
		{controllerManager, c.controllerManagerArgs(s.Ports), controllerManagerTimeout, func() bool {
			return probe(c.httpsClient(caPEM, nil), kcmURL+"/healthz") &&
				probe(adminClient, s.Server+"/api/v1/namespaces/default/serviceaccounts/default")
		}},
	}
	s.PIDs = map[string]int{}
	var started []string
	var timings []string
	for _, step := range steps {
		t := time.Now()
		var proc *process
		if c.Nodes > 0 {
			proc, err = startDetachedIn(clusterNetns(c.Name), kubeBin, append([]string{step.component}, step.args...),
				c.Dir, c.logFile(step.component), c.pidFile(step.component), nil)
		} else {
			proc, err = startDetached(kubeBin, step.component, step.args, c.Dir, c.logFile(step.component), c.pidFile(step.component))
		}
		if err != nil {
			return started, err
		}
		started = append(started, step.component)
		s.PIDs[step.component] = proc.Pid
		if err := waitFor(step.component, step.timeout, proc, c.logFile(step.component), step.ready); err != nil {
			return started, err
		}
		timings = append(timings, fmt.Sprintf("%s %.1fs", step.component, time.Since(t).Seconds()))
	}
	fmt.Fprintf(os.Stderr, "govdc-cluster: %s ready in %.1fs (%s) at %s\n",
		c.Name, time.Since(start).Seconds(), strings.Join(timings, ", "), s.Server)
	return started, nil
}

func (c *cluster) etcdArgs(pts ports) []string {
	client := "http://127.0.0.1:" + strconv.Itoa(pts.EtcdClient)
	peer := "http://127.0.0.1:" + strconv.Itoa(pts.EtcdPeer)
	return []string{
		"--name=default",
		"--data-dir=" + c.path("etcd"),
		"--listen-client-urls=" + client,
		"--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=default=" + peer,
		"--unsafe-no-fsync", // test data only: much faster on slow disks
		"--quota-backend-bytes=" + strconv.Itoa(etcdQuotaBytes),
		"--log-level=warn",
	}
}

func (c *cluster) apiServerArgs(pts ports) []string {
	p := c.pki()
	args := []string{
		"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(pts.EtcdClient),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(pts.APIServer),
		"--tls-cert-file=" + p.APIServerCert(),
		"--tls-private-key-file=" + p.APIServerKey(),
		"--client-ca-file=" + p.CACert(),
		"--service-account-issuer=" + serviceAccountIssuer,
		"--api-audiences=" + serviceAccountIssuer,
		"--service-account-key-file=" + p.ServiceAccountPubKey(),
		"--service-account-signing-key-file=" + p.ServiceAccountKey(),
		"--requestheader-client-ca-file=" + p.FrontProxyCACert(),
		"--requestheader-allowed-names=" + frontProxyClientName,
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-uid-headers=X-Remote-Uid",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + p.FrontProxyClientCert(),
		"--proxy-client-key-file=" + p.FrontProxyClientKey(),
		"--service-cluster-ip-range=" + serviceCIDR,
		"--authorization-mode=RBAC",
		"--allow-privileged=true",
		"--enable-admission-plugins=" + strings.Join(admissionPlugins, ","),
		// The lease reconciler would try to publish 127.0.0.1 as the endpoint of the
		// "kubernetes" Service, which Endpoints validation rejects (loopback), every 10s.
		// The Service itself is created either way.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		"--audit-policy-file=" + c.auditPolicy(),
		"--audit-log-path=" + c.auditLog(),
		"--audit-log-maxsize=100",
		"--audit-log-maxbackup=1",
	}
	if c.FeatureGates != "" {
		args = append(args, "--feature-gates="+c.FeatureGates)
	}
	if c.Nodes > 0 {
		return withNodesAPIServerArgs(args, p)
	}
	return args
}

func (c *cluster) controllerManagerArgs(pts ports) []string {
	p := c.pki()
	kc := c.controllerManagerKubeconfig()
	args := []string{
		"--kubeconfig=" + kc,
		"--authentication-kubeconfig=" + kc,
		"--authorization-kubeconfig=" + kc,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(pts.ControllerManager),
		"--tls-cert-file=" + p.ControllerManagerServingCert(),
		"--tls-private-key-file=" + p.ControllerManagerServingKey(),
		"--service-account-private-key-file=" + p.ServiceAccountKey(),
		"--root-ca-file=" + p.CACert(),
		"--cluster-signing-cert-file=" + p.CACert(),
		"--cluster-signing-key-file=" + p.CAKey(),
		"--cluster-name=" + c.Name,
		"--use-service-account-credentials=true",
		"--controllers=" + strings.Join(controllers, ","),
		// Tests create and delete hundreds of namespaces; at the default 20 requests/s the
		// namespace controller's backlog starves the quota and garbage collectors for minutes.
		"--kube-api-qps=500",
		"--kube-api-burst=1000",
		"--concurrent-namespace-syncs=10",
		"--concurrent-resource-quota-syncs=10",
		"--profiling=false",
	}
	if c.Nodes > 0 {
		return withNodesControllerManagerArgs(args)
	}
	return args
}

// stopAll stops the components in reverse start order.
func stopAll(c *cluster) error {
	for i := len(components) - 1; i >= 0; i-- {
		comp := components[i]
		stopped, err := stopComponent(comp, c.pidFile(comp), stopGrace)
		if err != nil {
			return err
		}
		if stopped {
			fmt.Fprintf(os.Stderr, "govdc-cluster: %s: stopped %s\n", c.Name, comp)
		}
	}
	return nil
}

// down stops the cluster; purge also deletes its directory (etcd data, PKI, kubeconfigs).
func down(c *cluster, purge bool) error {
	if _, err := os.Stat(c.Dir); err != nil {
		return fmt.Errorf("no cluster %q in %s", c.Name, filepath.Dir(c.Dir))
	}
	unlock, err := lockFile(c.path(".lock"))
	if err != nil {
		return err
	}
	defer unlock()
	s, err := c.loadState()
	if err != nil {
		// An unreadable cluster.json must not keep the control plane running.
		return errors.Join(err, stopAll(c))
	}
	if s.Nodes > 0 {
		c.Nodes = s.Nodes
		if err := c.downNodes(s); err != nil {
			return err
		}
	} else if err := stopAll(c); err != nil {
		return err
	}
	if s.Name != "" {
		s.PIDs = nil
		_ = c.saveState(s)
	}
	if purge {
		return os.RemoveAll(c.Dir)
	}
	return nil
}
