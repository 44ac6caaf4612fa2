package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// kubeconfig is a single-cluster, single-user kubeconfig with all credentials embedded, so the
// file alone is enough for kubectl, helm and kube-rs.
type kubeconfig struct {
	Cluster string // cluster and context name
	User    string // user entry name
	Server  string // https://127.0.0.1:PORT
	CAPEM   []byte
	Client  *keyPair
}

// render returns the kubeconfig as YAML. Scalars are written as JSON strings, which YAML
// reads unchanged, so names such as "system:kube-controller-manager" need no special care.
func (k kubeconfig) render() []byte {
	q := func(s string) string {
		b, _ := json.Marshal(s)
		return string(b)
	}
	b64 := func(data []byte) string { return q(base64.StdEncoding.EncodeToString(data)) }
	var buf bytes.Buffer
	fmt.Fprintf(&buf, `apiVersion: v1
kind: Config
clusters:
- name: %s
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: %s
  context:
    cluster: %s
    user: %s
current-context: %s
preferences: {}
`,
		q(k.Cluster), q(k.Server), b64(k.CAPEM),
		q(k.User), b64(k.Client.CertPEM), b64(k.Client.KeyPEM),
		q(k.Cluster), q(k.Cluster), q(k.User),
		q(k.Cluster))
	return buf.Bytes()
}

// write stores the kubeconfig at path, readable by the owner only (it holds a private key).
func (k kubeconfig) write(path string) error {
	return writeFileAtomic(path, k.render(), 0o600)
}
