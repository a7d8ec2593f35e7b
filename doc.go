// Package daskgate is a drop-in replacement for the Dask Gateway server.
// The binary is cmd/daskgate; this root package only holds repository-wide
// tests (dependency rules).
package daskgate
