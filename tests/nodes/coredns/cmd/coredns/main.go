// Command coredns is CoreDNS with only the plugins govdc's local clusters use: the kubernetes
// plugin answers cluster.local from the API server, forward sends every other name to the
// cluster network namespace's resolver (none: pods of a local cluster never need the outside),
// and errors, health, ready, cache, loadbalance and log are the usual companions.
package main

import (
	_ "github.com/coredns/coredns/core/dnsserver" // the dns server type
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() { coremain.Run() }
