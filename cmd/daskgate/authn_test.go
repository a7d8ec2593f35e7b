package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/daskgate/daskgate/config"
)

// A hub served over TLS that requires a client certificate: the gateway
// calls it with auth.tls_ca and auth.tls_cert/tls_key, and fails closed
// without them.
func TestHubOverMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCert(t, nil, nil, "hub-ca", true)
	server, serverKey := newCert(t, ca, caKey, "127.0.0.1", false)
	client, clientKey := newCert(t, ca, caKey, "dask-gateway", false)
	files := map[string][]byte{"ca.pem": pemOf("CERTIFICATE", ca.Raw), "client.pem": pemOf("CERTIFICATE", client.Raw),
		"client.key": keyPEM(t, clientKey)}
	for name, b := range files {
		os.WriteFile(filepath.Join(dir, name), b, 0o600)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	hub := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"kind": "user", "name": "alice", "scopes": ["access:services"]}`))
	}))
	hub.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
		Certificates: []tls.Certificate{{Certificate: [][]byte{server.Raw}, PrivateKey: serverKey}}}
	hub.StartTLS()
	defer hub.Close()

	base := config.Auth{Type: "jupyterhub", JupyterHubAPIURL: hub.URL + "/hub/api", JupyterHubAPIToken: "svc", JupyterHubServiceName: "dask-gateway"}
	withTLS := base
	withTLS.TLSCA, withTLS.TLSCert, withTLS.TLSKey = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "client.pem"), filepath.Join(dir, "client.key")
	log := slog.New(slog.DiscardHandler)
	req := httptest.NewRequest("GET", "/api/v1/clusters/", nil)
	req.Header.Set("Authorization", "jupyterhub tok")

	a, _, err := newAuthenticator(withTLS, "", log)
	if err != nil {
		t.Fatal(err)
	}
	if u, err := a.Authenticate(req); err != nil || u.Name != "alice" {
		t.Fatalf("with the CA and client certificate: %v %v", u, err)
	}
	noCert := base
	noCert.TLSCA = withTLS.TLSCA
	a, _, _ = newAuthenticator(noCert, "", log)
	if _, err := a.Authenticate(req); err == nil {
		t.Fatal("a hub requiring a client certificate accepted a call without one")
	}
	bad := withTLS
	bad.TLSCA = filepath.Join(dir, "client.key")
	if _, _, err := newAuthenticator(bad, "", log); err == nil {
		t.Fatal("a CA file without certificates accepted")
	}
}

func newCert(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, cn string, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: isCA, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	if ip := net.ParseIP(cn); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

func pemOf(kind string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}

func keyPEM(t *testing.T, k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf("PRIVATE KEY", der)
}
