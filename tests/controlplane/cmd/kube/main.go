// Command kube is one binary holding the real Kubernetes control-plane components that govdc's
// tests and demo run on: kube-apiserver, kube-controller-manager, etcd and kubectl, built from
// k8s.io/kubernetes and go.etcd.io/etcd. Each component runs as its own process (the first
// argument, or the name the binary is invoked under, picks it), because apiserver and
// controller-manager share process-global registries that clash inside one process.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	kubectl "k8s.io/kubectl/pkg/cmd"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	component, args := filepath.Base(os.Args[0]), os.Args[1:]
	if component == "kube" {
		if len(args) == 0 {
			fmt.Fprintln(os.Stderr, "usage: kube kube-apiserver|kube-controller-manager|etcd|kubectl [flags]")
			os.Exit(2)
		}
		component, args = args[0], args[1:]
	}
	switch component {
	case "kube-apiserver":
		cmd := apiserver.NewAPIServerCommand()
		cmd.SetArgs(args)
		os.Exit(cli.Run(cmd))
	case "kube-controller-manager":
		cmd := controllermanager.NewControllerManagerCommand()
		cmd.SetArgs(args)
		os.Exit(cli.Run(cmd))
	case "kubectl":
		cmd := kubectl.NewDefaultKubectlCommand()
		cmd.SetArgs(args)
		os.Exit(cli.Run(cmd))
	case "etcd":
		etcdmain.Main(append([]string{"etcd"}, args...))
	default:
		fmt.Fprintf(os.Stderr, "kube: unknown component %q\n", component)
		os.Exit(2)
	}
}
