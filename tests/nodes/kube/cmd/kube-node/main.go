// Command kube-node holds the node-side Kubernetes components of govdc's local clusters:
// kubelet, kube-proxy and kube-scheduler, built from the same pinned k8s.io/kubernetes module
// set as the control plane's kube binary (this module's go.mod carries the same requires and
// replaces; build.sh refuses to build when they drift). They live in a module and binary of
// their own so that adding them never changes the control plane's inputs hash.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/component-base/cli"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	component, args := filepath.Base(os.Args[0]), os.Args[1:]
	if component == "kube-node" {
		if len(args) == 0 {
			fmt.Fprintln(os.Stderr, "usage: kube-node kubelet|kube-proxy|kube-scheduler [flags]")
			os.Exit(2)
		}
		component, args = args[0], args[1:]
	}
	switch component {
	case "kubelet":
		cmd := kubelet.NewKubeletCommand(context.Background())
		cmd.SetArgs(args)
		os.Exit(cli.Run(cmd))
	case "kube-proxy":
		cmd := proxy.NewProxyCommand()
		cmd.SetArgs(args)
		os.Exit(cli.Run(cmd))
	case "kube-scheduler":
		cmd := scheduler.NewSchedulerCommand()
		cmd.SetArgs(args)
		os.Exit(cli.Run(cmd))
	default:
		fmt.Fprintf(os.Stderr, "kube-node: unknown component %q\n", component)
		os.Exit(2)
	}
}
