// Package e2e is a focused build of the Kubernetes e2e suite (k8s.io/kubernetes/test/e2e at the
// control plane's pinned version): the same TestMain and TestE2E as the upstream e2e_test.go, but
// only the spec packages for pods, Services, DNS and NetworkPolicy are linked in, so the binary
// builds in a fraction of the full suite's time. tests/e2e/run.sh runs it against a local cluster.
package e2e

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"k8s.io/component-base/version"
	k8se2e "k8s.io/kubernetes/test/e2e"
	"k8s.io/kubernetes/test/e2e/framework"
	"k8s.io/kubernetes/test/e2e/framework/config"
	"k8s.io/kubernetes/test/e2e/framework/testfiles"
	e2etestingmanifests "k8s.io/kubernetes/test/e2e/testing-manifests"
	testfixtures "k8s.io/kubernetes/test/fixtures"

	// Define and freeze the feature constants, as upstream does.
	_ "k8s.io/kubernetes/test/e2e/feature"

	// The specs: k8se2e links test/e2e/common (sig-node Pods and friends, common network and
	// storage); network adds sig-network (Services, DNS, the NetworkPolicy specs of netpol).
	_ "k8s.io/kubernetes/test/e2e/network"

	// Reconfigure the framework as upstream's e2e_test.go does.
	_ "k8s.io/kubernetes/test/e2e/framework/debug/init"
	_ "k8s.io/kubernetes/test/e2e/framework/metrics/init"
	_ "k8s.io/kubernetes/test/e2e/framework/node/init"
	_ "k8s.io/kubernetes/test/utils/format"
)

func TestMain(m *testing.M) {
	var versionFlag bool
	flag.CommandLine.BoolVar(&versionFlag, "version", false, "Displays version information.")
	config.CopyFlags(config.Flags, flag.CommandLine)
	framework.RegisterCommonFlags(flag.CommandLine)
	framework.RegisterClusterFlags(flag.CommandLine)
	flag.Parse()
	if versionFlag {
		fmt.Printf("%s\n", version.Get())
		os.Exit(0)
	}
	if flag.CommandLine.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "unknown additional command line arguments: %s", flag.CommandLine.Args())
		os.Exit(1)
	}
	testfiles.AddFileSource(e2etestingmanifests.GetE2ETestingManifestsFS())
	testfiles.AddFileSource(testfixtures.GetTestFixturesFS())
	framework.AfterReadingAllFlags(&framework.TestContext)
	os.Exit(m.Run())
}

func TestE2E(t *testing.T) {
	k8se2e.RunE2ETests(t)
}
