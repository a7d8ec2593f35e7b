// Package store keeps records in an embedded bbolt file, each sealed with
// AES-GCM so that cluster tokens and TLS keys are never on disk in clear.
// It is the only importer of bbolt.
//
// Typical use:
//
//	kr, _, err := store.LoadOrCreateKeys(os.Getenv(store.EnvKeys), dir+"/encrypt.key")
//	db, err := store.Open(dir+"/daskgate.db", kr)
//	err = db.Put("clusters", name, record)
//	err = db.ForEach("clusters", func(name string, v []byte) error { ... })
package store

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DB is an encrypted key-value store with named buckets.
type DB struct {
	bolt *bolt.DB
	keys *Keyring
}

// Open opens (creating if needed) the bbolt file at path.
func Open(path string, keys *Keyring) (*DB, error) {
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &DB{bolt: b, keys: keys}, nil
}

// Close closes the file.
func (d *DB) Close() error { return d.bolt.Close() }

// Put seals and writes value under key.
func (d *DB) Put(bucket, key string, value []byte) error {
	sealed := d.keys.Seal(value)
	return d.bolt.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), sealed)
	})
}

// Delete removes key; a missing key is not an error.
func (d *DB) Delete(bucket, key string) error {
	return d.bolt.Update(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(bucket)); b != nil {
			return b.Delete([]byte(key))
		}
		return nil
	})
}

// ForEach calls fn with every key and opened value in bucket, in key order.
// A value no key can open stops the walk with ErrDecrypt.
func (d *DB) ForEach(bucket string, fn func(key string, value []byte) error) error {
	return d.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucket))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			pt, err := d.keys.Open(v)
			if err != nil {
				return fmt.Errorf("record %s/%s: %w", bucket, k, err)
			}
			return fn(string(k), pt)
		})
	})
}
