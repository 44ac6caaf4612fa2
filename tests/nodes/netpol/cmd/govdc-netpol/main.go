// Command govdc-netpol enforces NetworkPolicies on one node of a govdc local cluster: kube-router's
// network policy controller alone (no routing, no service proxy), in the shape k3s embeds it. It
// writes iptables (nft backend) rules and ipsets in the node's network namespace, so they vanish
// with it. kube-router is the enforcer because this kernel has no nft `queue` (which
// kube-network-policies needs) and no IPVS; its module lives apart from the pinned Kubernetes one.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/cloudnativelabs/kube-router/v2/pkg/controllers/netpol"
	"github.com/cloudnativelabs/kube-router/v2/pkg/healthcheck"
	"github.com/cloudnativelabs/kube-router/v2/pkg/options"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the node's identity")
	node := flag.String("hostname-override", "", "name of the Node this controller runs on")
	serviceCIDR := flag.String("service-cidr", "10.0.0.0/24", "the cluster's Service CIDR")
	syncPeriod := flag.Duration("sync-period", time.Minute, "full resync period")
	klog.InitFlags(nil)
	flag.Parse()
	if err := run(*kubeconfig, *node, *serviceCIDR, *syncPeriod); err != nil {
		fmt.Fprintf(os.Stderr, "govdc-netpol: %v\n", err)
		os.Exit(1)
	}
}

func run(kubeconfig, node, serviceCIDR string, syncPeriod time.Duration) error {
	if kubeconfig == "" || node == "" {
		return fmt.Errorf("--kubeconfig and --hostname-override are required")
	}
	restConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return err
	}
	config := options.NewKubeRouterConfig()
	config.RunFirewall = true
	config.EnableIPv4 = true
	config.HostnameOverride = node
	config.ClusterIPCIDRs = []string{serviceCIDR}
	config.IPTablesSyncPeriod = syncPeriod

	iptables, ipsets, err := netpol.NewIPTablesHandlers(config)
	if err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	pods := factory.Core().V1().Pods().Informer()
	namespaces := factory.Core().V1().Namespaces().Informer()
	policies := factory.Networking().V1().NetworkPolicies().Informer()
	npc, err := netpol.NewNetworkPolicyController(client, config, pods, policies, namespaces,
		&sync.Mutex{}, iptables, ipsets)
	if err != nil {
		return err
	}
	if _, err := pods.AddEventHandler(npc.PodEventHandler); err != nil {
		return err
	}
	if _, err := namespaces.AddEventHandler(npc.NamespaceEventHandler); err != nil {
		return err
	}
	if _, err := policies.AddEventHandler(npc.NetworkPolicyEventHandler); err != nil {
		return err
	}

	stop := make(chan struct{})
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		close(stop)
	}()
	factory.Start(stop)
	factory.WaitForCacheSync(stop)

	// The controller reports a heartbeat after each sync; nobody here watches it.
	health := make(chan *healthcheck.ControllerHeartbeat, 10)
	go func() {
		for range health {
		}
	}()
	var wg sync.WaitGroup
	wg.Add(1)
	go npc.Run(health, stop, &wg)
	wg.Wait()
	return nil
}
