package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseKeys(t *testing.T) {
	raw := strings.Repeat("k", 32)
	if _, err := ParseKeys(raw + ";" + NewKey()); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "short", strings.Repeat("k", 31)} {
		if _, err := ParseKeys(bad); err == nil || !strings.Contains(err.Error(), EnvKeys) {
			t.Errorf("ParseKeys(%q) error %v does not name %s", bad, err, EnvKeys)
		}
	}
}

func TestRotationAndStore(t *testing.T) {
	dir := t.TempDir()
	oldKey, newKey := NewKey(), NewKey()
	kr, _ := ParseKeys(oldKey)
	db, err := Open(filepath.Join(dir, "db"), kr)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Put("clusters", "a", []byte("secret-token")); err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, _ := os.ReadFile(filepath.Join(dir, "db"))
	if strings.Contains(string(raw), "secret-token") {
		t.Fatal("record stored in clear")
	}
	// New key first, old key still decrypts.
	kr2, _ := ParseKeys(newKey + ";" + oldKey)
	db, _ = Open(filepath.Join(dir, "db"), kr2)
	got := map[string]string{}
	if err := db.ForEach("clusters", func(k string, v []byte) error { got[k] = string(v); return nil }); err != nil {
		t.Fatal(err)
	}
	if got["a"] != "secret-token" {
		t.Fatalf("got %v", got)
	}
	if err := db.Delete("clusters", "a"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// A wrong key is a clear error naming the variable.
	kr3, _ := ParseKeys(NewKey())
	db, _ = Open(filepath.Join(dir, "db"), kr3)
	defer db.Close()
	_ = db.Put("clusters", "b", []byte("x"))
	kr4, _ := ParseKeys(NewKey())
	db.keys = kr4
	err = db.ForEach("clusters", func(string, []byte) error { return nil })
	if !errors.Is(err, ErrDecrypt) {
		t.Fatalf("err = %v", err)
	}
}

func TestLoadOrCreateKeys(t *testing.T) {
	f := filepath.Join(t.TempDir(), "sub", "encrypt.key")
	if _, created, err := LoadOrCreateKeys("", f); err != nil || !created {
		t.Fatalf("created=%v err=%v", created, err)
	}
	if fi, _ := os.Stat(f); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if _, created, err := LoadOrCreateKeys("", f); err != nil || created {
		t.Fatalf("second load created=%v err=%v", created, err)
	}
	if _, _, err := LoadOrCreateKeys("not-a-key", f); err == nil || !strings.Contains(err.Error(), EnvKeys) {
		t.Fatalf("bad env: %v", err)
	}
}
