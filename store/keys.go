package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// EnvKeys is the environment variable holding the encryption keys.
const EnvKeys = "DASK_GATEWAY_ENCRYPT_KEYS"

// Keyring seals records with AES-256-GCM. The first key encrypts; every
// key is tried to decrypt, which allows rotation.
type Keyring struct {
	aeads []cipher.AEAD
}

// ParseKeys parses a ';'-separated list of keys, each 32 raw bytes or 32
// bytes in URL-safe base64 (upstream's Fernet key format). Errors name
// DASK_GATEWAY_ENCRYPT_KEYS.
func ParseKeys(s string) (*Keyring, error) {
	var kr Keyring
	for i, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key := []byte(part)
		if len(key) != 32 {
			b, err := base64.URLEncoding.DecodeString(part)
			if err != nil || len(b) != 32 {
				return nil, fmt.Errorf("%s: key %d must be 32 bytes, raw or url-safe base64", EnvKeys, i+1)
			}
			key = b
		}
		block, _ := aes.NewCipher(key)
		aead, _ := cipher.NewGCM(block)
		kr.aeads = append(kr.aeads, aead)
	}
	if len(kr.aeads) == 0 {
		return nil, fmt.Errorf("%s: no keys given", EnvKeys)
	}
	return &kr, nil
}

// NewKey returns a fresh key in the url-safe base64 form ParseKeys accepts.
func NewKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.URLEncoding.EncodeToString(b)
}

// LoadOrCreateKeys reads keys from DASK_GATEWAY_ENCRYPT_KEYS when it is set
// (value given as env); otherwise from keyFile, creating it with a fresh key
// (mode 0600) when missing. created tells the caller to log that it did.
func LoadOrCreateKeys(env, keyFile string) (kr *Keyring, created bool, err error) {
	if strings.TrimSpace(env) != "" {
		kr, err = ParseKeys(env)
		return kr, false, err
	}
	b, err := os.ReadFile(keyFile)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(keyFile), 0o700); err != nil {
			return nil, false, fmt.Errorf("create key dir: %w", err)
		}
		b = []byte(NewKey() + "\n")
		if err := os.WriteFile(keyFile, b, 0o600); err != nil {
			return nil, false, fmt.Errorf("write key file: %w", err)
		}
		created = true
	} else if err != nil {
		return nil, false, fmt.Errorf("read key file: %w", err)
	}
	kr, err = ParseKeys(string(b))
	if err != nil {
		return nil, false, fmt.Errorf("key file %s: %w", keyFile, err)
	}
	return kr, created, nil
}

// Seal encrypts plaintext with the first key; the nonce is prepended.
func (k *Keyring) Seal(plaintext []byte) []byte {
	a := k.aeads[0]
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(plaintext)+a.Overhead())
	_, _ = rand.Read(nonce)
	return a.Seal(nonce, nonce, plaintext, nil)
}

// ErrDecrypt means no key opened a record.
var ErrDecrypt = errors.New("no key in " + EnvKeys + " decrypts the stored data")

// Open decrypts a sealed value with whichever key fits.
func (k *Keyring) Open(sealed []byte) ([]byte, error) {
	for _, a := range k.aeads {
		if len(sealed) < a.NonceSize() {
			break
		}
		if pt, err := a.Open(nil, sealed[:a.NonceSize()], sealed[a.NonceSize():], nil); err == nil {
			return pt, nil
		}
	}
	return nil, ErrDecrypt
}
