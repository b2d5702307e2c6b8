// boltwrite writes a bbolt file from a JSON description of nested buckets, read on stdin:
//
//	{"buckets": [{"name": "b", "pairs": [{"key": "k", "value": {...}}], "buckets": [...]}]}
//
// Each value is stored as its compact JSON bytes, which is how Trivy's DB stores records.
// Usage: boltwrite OUTPUT.db < description.json
package main

import (
	"encoding/json"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
)

type pair struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

type bucket struct {
	Name    string   `json:"name"`
	Pairs   []pair   `json:"pairs"`
	Buckets []bucket `json:"buckets"`
}

type creator interface {
	CreateBucketIfNotExists([]byte) (*bolt.Bucket, error)
}

func fill(parent creator, spec bucket) error {
	b, err := parent.CreateBucketIfNotExists([]byte(spec.Name))
	if err != nil {
		return fmt.Errorf("bucket %q: %w", spec.Name, err)
	}
	for _, p := range spec.Pairs {
		if err := b.Put([]byte(p.Key), []byte(p.Value)); err != nil {
			return fmt.Errorf("bucket %q key %q: %w", spec.Name, p.Key, err)
		}
	}
	for _, child := range spec.Buckets {
		if err := fill(b, child); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: boltwrite OUTPUT.db < description.json")
		os.Exit(2)
	}
	var root struct {
		Buckets []bucket `json:"buckets"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&root); err != nil {
		fmt.Fprintln(os.Stderr, "boltwrite: reading the description:", err)
		os.Exit(2)
	}
	db, err := bolt.Open(os.Args[1], 0o644, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "boltwrite:", err)
		os.Exit(1)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range root.Buckets {
			if err := fill(tx, b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "boltwrite:", err)
		os.Exit(1)
	}
}
