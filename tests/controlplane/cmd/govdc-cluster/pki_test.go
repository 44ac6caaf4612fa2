package main

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
)

func ensuredPKI(t *testing.T) pki {
	t.Helper()
	p := pki{dir: t.TempDir()}
	if err := p.ensure("test"); err != nil {
		t.Fatal(err)
	}
	return p
}

func verify(t *testing.T, p pki, certFile string, opts x509.VerifyOptions) *x509.Certificate {
	t.Helper()
	ca, err := p.CA()
	if err != nil {
		t.Fatal(err)
	}
	kp, err := loadKeyPair(certFile, strings.TrimSuffix(certFile, ".crt")+".key")
	if err != nil {
		t.Fatal(err)
	}
	opts.Roots = x509.NewCertPool()
	opts.Roots.AddCert(ca.Cert)
	if _, err := kp.Cert.Verify(opts); err != nil {
		t.Fatalf("%s does not verify against the CA: %v", certFile, err)
	}
	return kp.Cert
}

func TestAPIServerCertSANs(t *testing.T) {
	p := ensuredPKI(t)
	for _, host := range append(slices.Clone(apiServerDNSNames), "127.0.0.1", "10.0.0.1") {
		verify(t, p, p.APIServerCert(), x509.VerifyOptions{
			DNSName:   host,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
	}
	cert := verify(t, p, p.APIServerCert(), x509.VerifyOptions{})
	if !slices.ContainsFunc(cert.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) }) {
		t.Errorf("IP SANs %v lack 127.0.0.1", cert.IPAddresses)
	}
	if err := cert.VerifyHostname("example.com"); err == nil {
		t.Error("serving cert must not be valid for example.com")
	}
}

func TestClientCertSubjects(t *testing.T) {
	p := ensuredPKI(t)
	client := x509.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	admin := verify(t, p, p.AdminCert(), client)
	if admin.Subject.CommonName != "govdc-admin" || !slices.Equal(admin.Subject.Organization, []string{"system:masters"}) {
		t.Errorf("admin subject = %v", admin.Subject)
	}
	kcm := verify(t, p, p.ControllerManagerCert(), client)
	if kcm.Subject.CommonName != "system:kube-controller-manager" || len(kcm.Subject.Organization) != 0 {
		t.Errorf("controller-manager subject = %v", kcm.Subject)
	}
	if _, err := kcm.Verify(x509.VerifyOptions{
		Roots:     x509.NewCertPool(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err == nil {
		t.Error("client cert must not verify without the CA")
	}
	verify(t, p, p.ControllerManagerServingCert(), x509.VerifyOptions{
		DNSName:   "127.0.0.1",
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
}

func TestFrontProxyClientCert(t *testing.T) {
	p := ensuredPKI(t)
	fp, err := loadKeyPair(p.FrontProxyCACert(), p.FrontProxyCAKey())
	if err != nil {
		t.Fatal(err)
	}
	client, err := loadKeyPair(p.FrontProxyClientCert(), p.FrontProxyClientKey())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(fp.Cert)
	if _, err := client.Cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
	if client.Cert.Subject.CommonName != frontProxyClientName {
		t.Errorf("front-proxy client CN = %q", client.Cert.Subject.CommonName)
	}
	// Separate CAs: a front-proxy certificate must not authenticate as a user.
	verifyFails := x509.NewCertPool()
	ca, _ := p.CA()
	verifyFails.AddCert(ca.Cert)
	if _, err := client.Cert.Verify(x509.VerifyOptions{Roots: verifyFails, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("front-proxy client cert verifies against the cluster CA")
	}
}

func TestUserCert(t *testing.T) {
	p := ensuredPKI(t)
	ca, err := p.CA()
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.clientCert("alice", "govdc:operators", "govdc:auditors")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
	// DER sorts the values of the multi-valued O attribute; Kubernetes ignores their order.
	groups := slices.Sorted(slices.Values(kp.Cert.Subject.Organization))
	if kp.Cert.Subject.CommonName != "alice" || !slices.Equal(groups, []string{"govdc:auditors", "govdc:operators"}) {
		t.Errorf("subject = %v", kp.Cert.Subject)
	}
	if _, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM); err != nil {
		t.Errorf("cert and key do not match: %v", err)
	}
}

func TestEnsureKeepsExistingPKI(t *testing.T) {
	p := ensuredPKI(t)
	before, err := os.ReadFile(p.CACert())
	if err != nil {
		t.Fatal(err)
	}
	apiBefore, _ := os.ReadFile(p.APIServerCert())
	os.Remove(p.AdminCert()) // a missing leaf is re-issued by the same CA
	if err := p.ensure("test"); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(p.CACert())
	apiAfter, _ := os.ReadFile(p.APIServerCert())
	if !bytes.Equal(before, after) || !bytes.Equal(apiBefore, apiAfter) {
		t.Error("ensure replaced an existing CA or certificate")
	}
	verify(t, p, p.AdminCert(), x509.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
}

func TestServiceAccountKeys(t *testing.T) {
	p := ensuredPKI(t)
	keyPEM, _ := os.ReadFile(p.ServiceAccountKey())
	pubPEM, _ := os.ReadFile(p.ServiceAccountPubKey())
	kb, _ := pem.Decode(keyPEM)
	pb, _ := pem.Decode(pubPEM)
	if kb == nil || kb.Type != "PRIVATE KEY" || pb == nil || pb.Type != "PUBLIC KEY" {
		t.Fatal("service-account key files are not PEM PRIVATE KEY / PUBLIC KEY")
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.ParsePKIXPublicKey(pb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !key.(crypto.Signer).Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
		t.Error("sa.pub is not the public half of sa.key")
	}
	if info, _ := os.Stat(p.ServiceAccountKey()); info.Mode().Perm() != 0o600 {
		t.Errorf("sa.key mode = %v, want 0600", info.Mode().Perm())
	}
}

func TestKubeconfigEmbedsCredentials(t *testing.T) {
	p := ensuredPKI(t)
	ca, _ := p.CA()
	admin, err := loadKeyPair(p.AdminCert(), p.AdminKey())
	if err != nil {
		t.Fatal(err)
	}
	out := string(kubeconfig{Cluster: "primary", User: "system:kube-controller-manager", Server: "https://127.0.0.1:6443", CAPEM: ca.CertPEM, Client: admin}.render())
	for _, want := range []string{
		`server: "https://127.0.0.1:6443"`,
		`- name: "system:kube-controller-manager"`,
		`current-context: "primary"`,
		`certificate-authority-data: "` + base64.StdEncoding.EncodeToString(ca.CertPEM) + `"`,
		`client-key-data: "` + base64.StdEncoding.EncodeToString(admin.KeyPEM) + `"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("kubeconfig lacks %s:\n%s", want, out)
		}
	}
}
