package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Certificate lifetimes. Clusters are test fixtures that may live in target/ for a long time,
// so nothing should expire while a developer still uses them.
const (
	caValidity   = 20 * 365 * 24 * time.Hour
	leafValidity = 10 * 365 * 24 * time.Hour
)

// firstServiceIP is the first address of --service-cluster-ip-range, the ClusterIP of the
// "kubernetes" Service, which in-cluster clients dial.
var firstServiceIP = net.IPv4(10, 0, 0, 1)

// frontProxyClientName is the CN of the certificate the apiserver presents when it proxies
// to aggregated API servers (--requestheader-allowed-names).
const frontProxyClientName = "front-proxy-client"

// apiServerDNSNames are the DNS SANs of the apiserver serving certificate.
var apiServerDNSNames = []string{
	"localhost",
	"kubernetes",
	"kubernetes.default",
	"kubernetes.default.svc",
	"kubernetes.default.svc.cluster.local",
}

// keyPair is a certificate with its private key, both parsed and PEM encoded.
type keyPair struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	KeyPEM  []byte
}

// certSpec describes a certificate to issue.
type certSpec struct {
	CommonName   string
	Organization []string
	DNSNames     []string
	IPs          []net.IP
	Usages       []x509.ExtKeyUsage
}

// newCA creates a self-signed certificate authority.
func newCA(commonName string) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return newKeyPair(der, key)
}

// issue signs a new ECDSA P-256 leaf certificate described by spec with ca.
func (ca *keyPair) issue(spec certSpec) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: spec.CommonName, Organization: spec.Organization},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  spec.Usages,
		DNSNames:     spec.DNSNames,
		IPAddresses:  spec.IPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, err
	}
	return newKeyPair(der, key)
}

// clientCert issues a client certificate for user in groups (Kubernetes reads the user from
// the CN and the groups from O).
func (ca *keyPair) clientCert(user string, groups ...string) (*keyPair, error) {
	return ca.issue(certSpec{
		CommonName:   user,
		Organization: groups,
		Usages:       []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

func newKeyPair(der []byte, key crypto.Signer) (*keyPair, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return &keyPair{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  keyPEM,
	}, nil
}

// encodeKey encodes a private key as PKCS#8 "PRIVATE KEY", which Go, OpenSSL, rustls and
// Kubernetes' keyutil all read.
func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func randomSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// loadKeyPair reads a PEM certificate and its PEM private key.
func loadKeyPair(certFile, keyFile string) (*keyPair, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certFile, err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: key cannot sign", keyFile)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, err
	}
	return &keyPair{Cert: cert, Key: signer, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// save writes the pair to certFile and keyFile.
func (kp *keyPair) save(certFile, keyFile string) error {
	if err := writeFileAtomic(keyFile, kp.KeyPEM, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(certFile, kp.CertPEM, 0o644)
}

// pki names the files of a cluster's PKI directory.
type pki struct{ dir string }

func (p pki) path(name string) string { return filepath.Join(p.dir, name) }

// CACert and the other methods return the paths handed to the components.
func (p pki) CACert() string                { return p.path("ca.crt") }
func (p pki) CAKey() string                 { return p.path("ca.key") }
func (p pki) APIServerCert() string         { return p.path("apiserver.crt") }
func (p pki) APIServerKey() string          { return p.path("apiserver.key") }
func (p pki) AdminCert() string             { return p.path("admin.crt") }
func (p pki) AdminKey() string              { return p.path("admin.key") }
func (p pki) ControllerManagerCert() string { return p.path("controller-manager.crt") }
func (p pki) ControllerManagerKey() string  { return p.path("controller-manager.key") }
func (p pki) ControllerManagerServingCert() string {
	return p.path("controller-manager-serving.crt")
}
func (p pki) ControllerManagerServingKey() string {
	return p.path("controller-manager-serving.key")
}
func (p pki) FrontProxyCACert() string     { return p.path("front-proxy-ca.crt") }
func (p pki) FrontProxyCAKey() string      { return p.path("front-proxy-ca.key") }
func (p pki) FrontProxyClientCert() string { return p.path("front-proxy-client.crt") }
func (p pki) FrontProxyClientKey() string  { return p.path("front-proxy-client.key") }
func (p pki) ServiceAccountKey() string    { return p.path("sa.key") }
func (p pki) ServiceAccountPubKey() string { return p.path("sa.pub") }

// CA loads the cluster's certificate authority.
func (p pki) CA() (*keyPair, error) { return loadKeyPair(p.CACert(), p.CAKey()) }

// ensure creates whatever part of the PKI is missing and keeps what exists, so a cluster keeps
// its CA (and the kubeconfigs handed out) across restarts.
func (p pki) ensure(clusterName string) error {
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return err
	}
	ca, err := ensureCA(p.CACert(), p.CAKey(), "govdc-"+clusterName+"-ca")
	if err != nil {
		return err
	}
	// The front-proxy (request-header) CA lets the apiserver proxy to aggregated API servers
	// and lets components that delegate authentication (the controller-manager) trust it.
	frontProxyCA, err := ensureCA(p.FrontProxyCACert(), p.FrontProxyCAKey(), "govdc-"+clusterName+"-front-proxy-ca")
	if err != nil {
		return err
	}
	loopback := []net.IP{net.IPv4(127, 0, 0, 1)}
	leaves := []struct {
		ca        *keyPair
		cert, key string
		spec      certSpec
	}{
		{ca, p.APIServerCert(), p.APIServerKey(), certSpec{
			CommonName: "kube-apiserver",
			DNSNames:   apiServerDNSNames,
			IPs:        append(loopback, firstServiceIP),
			Usages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}},
		{ca, p.AdminCert(), p.AdminKey(), certSpec{
			CommonName:   "govdc-admin",
			Organization: []string{"system:masters"},
			Usages:       []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}},
		{ca, p.ControllerManagerCert(), p.ControllerManagerKey(), certSpec{
			CommonName: "system:kube-controller-manager",
			Usages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}},
		{ca, p.ControllerManagerServingCert(), p.ControllerManagerServingKey(), certSpec{
			CommonName: "kube-controller-manager",
			DNSNames:   []string{"localhost"},
			IPs:        loopback,
			Usages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}},
		{frontProxyCA, p.FrontProxyClientCert(), p.FrontProxyClientKey(), certSpec{
			CommonName: frontProxyClientName,
			Usages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}},
	}
	for _, leaf := range leaves {
		if fileExists(leaf.cert) && fileExists(leaf.key) {
			continue
		}
		kp, err := leaf.ca.issue(leaf.spec)
		if err != nil {
			return fmt.Errorf("%s: %w", leaf.cert, err)
		}
		if err := kp.save(leaf.cert, leaf.key); err != nil {
			return err
		}
	}
	if !fileExists(p.ServiceAccountKey()) || !fileExists(p.ServiceAccountPubKey()) {
		if err := p.newServiceAccountKey(); err != nil {
			return fmt.Errorf("service-account key: %w", err)
		}
	}
	return nil
}

// ensureCA loads the CA in certFile and keyFile, creating it if it does not exist yet.
func ensureCA(certFile, keyFile, commonName string) (*keyPair, error) {
	ca, err := loadKeyPair(certFile, keyFile)
	if errors.Is(err, fs.ErrNotExist) {
		if ca, err = newCA(commonName); err == nil {
			err = ca.save(certFile, keyFile)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("CA %s: %w", certFile, err)
	}
	return ca, nil
}

// newServiceAccountKey writes the RSA key pair that signs (sa.key) and verifies (sa.pub)
// service-account tokens. RSA keeps tokens RS256, what most token consumers expect.
func (p pki) newServiceAccountKey() error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return err
	}
	if err := writeFileAtomic(p.ServiceAccountKey(), keyPEM, 0o600); err != nil {
		return err
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	return writeFileAtomic(p.ServiceAccountPubKey(), pubPEM, 0o644)
}

// writeFileAtomic writes data to a temporary file beside path and renames it into place, so an
// interrupted run never leaves a truncated key or kubeconfig behind.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
