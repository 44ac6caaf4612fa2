package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestLocalPathConfigNamesEveryNodesOwnDirectory(t *testing.T) {
	nodes := []nodeSpec{
		{Cluster: "c", Index: 0, Dir: "/x/clusters/c/nodes/n0"},
		{Cluster: "c", Index: 1, Dir: "/x/clusters/c/nodes/n1"},
	}
	var config struct {
		NodePathMap []struct {
			Node  string   `json:"node"`
			Paths []string `json:"paths"`
		} `json:"nodePathMap"`
	}
	if err := json.Unmarshal([]byte(localPathConfig(nodes)), &config); err != nil {
		t.Fatalf("config.json: %v", err)
	}
	if len(config.NodePathMap) != 2 || config.NodePathMap[1].Node != "c-node-1" ||
		len(config.NodePathMap[1].Paths) != 1 || config.NodePathMap[1].Paths[0] != "/x/clusters/c/nodes/n1/local-path" {
		t.Errorf("nodePathMap: %+v", config.NodePathMap)
	}
	// No DEFAULT_PATH_FOR_NON_LISTED_NODES: a node without a directory of its own gets no volume.
	if strings.Contains(localPathConfig(nodes), "DEFAULT_PATH") {
		t.Error("a default path would be shared by every cluster on the machine")
	}
}

func TestStorageManifestIsTheDefaultClassWithTheProjectsImages(t *testing.T) {
	m := storageManifest([]nodeSpec{{Cluster: "c", Index: 0, Dir: "/d/n0"}})
	for _, want := range []string{
		"storageclass.kubernetes.io/is-default-class: \"true\"",
		"provisioner: rancher.io/local-path\n",
		"volumeBindingMode: WaitForFirstConsumer\n",
		"image: docker.io/govdc/local-path-provisioner:v0.0.30\n        imagePullPolicy: Never\n",
		`mkdir -m 0777 -p \"$VOL_DIR\"`,
		`image: docker.io/govdc/busybox:1.35.0\n    imagePullPolicy: Never`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("the storage manifest lacks %q:\n%s", want, m)
		}
	}
}

func TestLinkKubeconfigNamesTheLinkAsServer(t *testing.T) {
	k := kubeconfig{Cluster: "dr", User: "admin", Server: "https://127.0.0.1:12345", CAPEM: []byte("ca"),
		Client: &keyPair{CertPEM: []byte("c"), KeyPEM: []byte("k")}}
	got, err := linkKubeconfig(string(k.render()), k.Server, "https://10.89.0.1:12345")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, `server: "https://10.89.0.1:12345"`) || strings.Contains(got, "127.0.0.1") {
		t.Errorf("link kubeconfig:\n%s", got)
	}
	if _, err := linkKubeconfig(string(k.render()), "https://127.0.0.1:1", "x"); err == nil {
		t.Error("a kubeconfig of another server was rewritten")
	}
}
