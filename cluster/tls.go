package cluster

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"
)

// NewKeypair makes a cluster's TLS credentials the way upstream's tls.py
// does: RSA 2048, a self-signed X.509 v3 certificate with CN=dask-internal,
// DNS SANs <name>, dask-internal, skein-internal, valid 365 days, and no
// other extensions. It returns the certificate and PKCS#8 key as PEM. The
// same pair is CA, server and client certificate for scheduler, workers
// and the user's client.
func NewKeypair(name string) (certPEM, keyPEM []byte, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("generate rsa key: %w", err)
	}
	return selfSigned(name, key, &key.PublicKey)
}

// NewECKeypair is NewKeypair with an ECDSA P-256 key: the same
// certificate shape, made in about 0.1 ms instead of RSA's ~100 ms, which
// matters when a controller starts hundreds of clusters at once.
func NewECKeypair(name string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ecdsa key: %w", err)
	}
	return selfSigned(name, key, &key.PublicKey)
}

func selfSigned(name string, key crypto.Signer, pub any) (certPEM, keyPEM []byte, err error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 159))
	if err != nil {
		return nil, nil, fmt.Errorf("generate serial: %w", err)
	}
	now := time.Now().UTC()
	tmpl := &x509.Certificate{
		SerialNumber: serial.Add(serial, big.NewInt(1)),
		Subject:      pkix.Name{CommonName: "dask-internal"},
		NotBefore:    now,
		NotAfter:     now.Add(365 * 24 * time.Hour),
		DNSNames:     []string{name, "dask-internal", "skein-internal"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})
	return certPEM, keyPEM, nil
}
