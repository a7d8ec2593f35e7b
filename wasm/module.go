// Package wasm runs policy decisions from WebAssembly modules with wazero
// (pure Go, no cgo), under the daskgate-abi/1 contract (docs/wasm-abi.md):
// JSON in and out through guest memory, one export per decision. It is
// the only importer of wazero. A module is compiled once; calls take a
// pooled instance under a timeout and a memory cap, and an instance that
// trapped or timed out is discarded, never reused.
//
// Typical use (ExampleLoad runs it):
//
//	m, err := wasm.Load(ctx, wasm.Config{Path: "handler.wasm"})
//	out, err := m.Call(ctx, "options", inputJSON) // output JSON
//	e, err := wasm.NewEngine(ctx, wasm.Config{Path: "handler.wasm"}, fallbackHandler, fallbackAuthorizer)
package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// ABI names (docs/wasm-abi.md).
const (
	ABIVersion       = 1
	ExportABIVersion = "daskgate_abi_version"
	ExportAlloc      = "daskgate_alloc"
	ExportFree       = "daskgate_free"
	HostModule       = "daskgate"
	HostLog          = "log"
)

// Decisions a module may export.
var Decisions = []string{"fields", "options", "authorize"}

// Config configures a module.
type Config struct {
	// Path is the .wasm file.
	Path string
	// SHA256, if set, pins the module: a file with another digest is refused.
	SHA256 string
	// Timeout bounds one call; zero means 100ms.
	Timeout time.Duration
	// MemoryLimit caps a module's memory in bytes; zero means 64 MiB.
	MemoryLimit uint32
	// MaxIO caps input and output sizes in bytes; zero means 1 MiB.
	MaxIO int
	// PoolSize is how many idle instances are kept; zero means 2×GOMAXPROCS.
	// At most GOMAXPROCS calls run at once; the rest wait for a slot.
	PoolSize int
	// CacheDir keeps compiled code across restarts; "" means no disk cache.
	CacheDir string
	Logger   *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Timeout <= 0 {
		c.Timeout = 100 * time.Millisecond
	}
	if c.MemoryLimit == 0 {
		c.MemoryLimit = 64 << 20
	}
	if c.MaxIO <= 0 {
		c.MaxIO = 1 << 20
	}
	if c.PoolSize <= 0 {
		c.PoolSize = 2 * runtime.GOMAXPROCS(0)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Module is a compiled module with a pool of instances.
type Module struct {
	cfg      Config
	name     string
	digest   string
	runtime  wazero.Runtime
	compiled wazero.CompiledModule
	exports  map[string]bool
	pool     chan *instance
	// slots bounds calls running at once to GOMAXPROCS: guest code is
	// CPU-bound, so more would only share the CPU and eat each other's
	// timeouts. Waiting for a slot is bounded by the caller's context.
	slots chan struct{}

	refMu    sync.Mutex
	inflight int
	retired  bool
}

// acquire marks a call in flight; false once the module is retired.
func (m *Module) acquire() bool {
	m.refMu.Lock()
	defer m.refMu.Unlock()
	if m.retired {
		return false
	}
	m.inflight++
	return true
}

func (m *Module) release() {
	m.refMu.Lock()
	m.inflight--
	closeNow := m.retired && m.inflight == 0
	m.refMu.Unlock()
	if closeNow {
		m.Close(context.Background())
	}
}

// Retire closes the module once the calls in flight on it have finished
// (a hot reload swapped in another one).
func (m *Module) Retire() {
	m.refMu.Lock()
	m.retired = true
	closeNow := m.inflight == 0
	m.refMu.Unlock()
	if closeNow {
		m.Close(context.Background())
	}
}

// Load reads, checks and compiles a module.
func Load(ctx context.Context, cfg Config) (*Module, error) {
	cfg.setDefaults()
	bin, err := os.ReadFile(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("read wasm module: %w", err)
	}
	sum := sha256.Sum256(bin)
	digest := hex.EncodeToString(sum[:])
	if cfg.SHA256 != "" && !strings.EqualFold(cfg.SHA256, digest) {
		return nil, fmt.Errorf("wasm module %s: sha256 %s does not match the pinned %s", cfg.Path, digest, cfg.SHA256)
	}
	rc := wazero.NewRuntimeConfig().WithCloseOnContextDone(true).WithMemoryLimitPages(cfg.MemoryLimit / 65536)
	if cfg.CacheDir != "" {
		cache, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasm compilation cache: %w", err)
		}
		rc = rc.WithCompilationCache(cache)
	}
	m := &Module{cfg: cfg, name: filepath.Base(cfg.Path), digest: digest, runtime: wazero.NewRuntimeWithConfig(ctx, rc),
		pool: make(chan *instance, cfg.PoolSize), slots: make(chan struct{}, runtime.GOMAXPROCS(0))}
	if err := m.compile(ctx, bin); err != nil {
		m.runtime.Close(ctx)
		return nil, err
	}
	return m, nil
}

func (m *Module) compile(ctx context.Context, bin []byte) error {
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, m.runtime); err != nil {
		return err
	}
	_, err := m.runtime.NewHostModuleBuilder(HostModule).NewFunctionBuilder().
		WithFunc(m.hostLog).Export(HostLog).Instantiate(ctx)
	if err != nil {
		return err
	}
	if m.compiled, err = m.runtime.CompileModule(ctx, bin); err != nil {
		return fmt.Errorf("compile wasm module %s: %w", m.name, err)
	}
	m.exports = map[string]bool{}
	for name := range m.compiled.ExportedFunctions() {
		m.exports[name] = true
	}
	for _, need := range []string{ExportABIVersion, ExportAlloc, ExportFree} {
		if !m.exports[need] {
			return fmt.Errorf("wasm module %s: missing export %s (daskgate-abi/%d)", m.name, need, ABIVersion)
		}
	}
	if _, ok := m.compiled.ExportedMemories()["memory"]; !ok {
		return fmt.Errorf("wasm module %s: missing exported memory", m.name)
	}
	inst, err := m.instantiate(ctx)
	if err != nil {
		return err
	}
	res, err := inst.mod.ExportedFunction(ExportABIVersion).Call(ctx)
	if err != nil || len(res) != 1 || res[0] != ABIVersion {
		inst.mod.Close(ctx)
		return fmt.Errorf("wasm module %s: ABI version %v, want %d (%v)", m.name, res, ABIVersion, err)
	}
	m.put(ctx, inst)
	return nil
}

// hostLog is the one host import: log(level, ptr, len) into slog with the
// module's name. Levels are slog's (-4 debug, 0 info, 4 warn, 8 error).
func (m *Module) hostLog(ctx context.Context, mod api.Module, level int32, ptr, n uint32) {
	msg, ok := mod.Memory().Read(ptr, min(n, 4096))
	if !ok {
		return
	}
	m.cfg.Logger.Log(ctx, slog.Level(level), "wasm module log", "module", m.name, "msg", string(msg))
}

// Implements reports whether the module exports a decision.
func (m *Module) Implements(decision string) bool { return m.exports[decision] }

// Name is the module's file name; Digest its sha256.
func (m *Module) Name() string   { return m.name }
func (m *Module) Digest() string { return m.digest }

// Exports lists the exported functions.
func (m *Module) Exports() []string {
	out := make([]string, 0, len(m.exports))
	for n := range m.exports {
		out = append(out, n)
	}
	return out
}

// instance is one instantiated module with its exported functions looked
// up once (each lookup allocates a call engine and stack in wazero).
type instance struct {
	mod api.Module
	mem api.Memory
	fns map[string]api.Function
}

func (m *Module) instantiate(ctx context.Context) (*instance, error) {
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize")
	mod, err := m.runtime.InstantiateModule(ctx, m.compiled, cfg)
	if err != nil {
		return nil, fmt.Errorf("instantiate wasm module %s: %w", m.name, err)
	}
	inst := &instance{mod: mod, mem: mod.Memory(), fns: map[string]api.Function{}}
	for _, name := range append([]string{ExportAlloc, ExportFree}, Decisions...) {
		if m.exports[name] {
			inst.fns[name] = mod.ExportedFunction(name)
		}
	}
	return inst, nil
}

func (m *Module) get(ctx context.Context) (*instance, error) {
	select {
	case inst := <-m.pool:
		return inst, nil
	default:
		return m.instantiate(ctx)
	}
}

func (m *Module) put(ctx context.Context, inst *instance) {
	select {
	case m.pool <- inst:
	default:
		inst.mod.Close(ctx)
	}
}

// ErrTooLarge means an input or output exceeded MaxIO.
var ErrTooLarge = errors.New("wasm input or output too large")

// Call runs one decision export with input JSON and returns the output
// JSON. The instance is reused unless the call failed in any way.
func (m *Module) Call(ctx context.Context, decision string, input []byte) ([]byte, error) {
	if !m.exports[decision] {
		return nil, fmt.Errorf("wasm module %s does not export %s", m.name, decision)
	}
	if len(input) > m.cfg.MaxIO {
		return nil, ErrTooLarge
	}
	select {
	case m.slots <- struct{}{}:
		defer func() { <-m.slots }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	inst, err := m.get(ctx)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	out, err := m.call(cctx, inst, decision, input)
	if err != nil {
		inst.mod.Close(context.Background()) // trapped, timed out or confused: never reuse
		if cctx.Err() != nil && ctx.Err() == nil {
			err = fmt.Errorf("wasm module %s: %s timed out after %v: %w", m.name, decision, m.cfg.Timeout, err)
		}
		return nil, err
	}
	m.put(ctx, inst)
	return out, nil
}

func (m *Module) call(ctx context.Context, inst *instance, decision string, input []byte) ([]byte, error) {
	res, err := inst.fns[ExportAlloc].Call(ctx, uint64(len(input)))
	if err != nil {
		return nil, fmt.Errorf("alloc: %w", err)
	}
	ptr := uint32(res[0])
	if !inst.mem.Write(ptr, input) {
		return nil, errors.New("alloc returned memory out of range")
	}
	res, err = inst.fns[decision].Call(ctx, uint64(ptr), uint64(len(input)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", decision, err)
	}
	free := inst.fns[ExportFree]
	if _, err := free.Call(ctx, uint64(ptr), uint64(len(input))); err != nil {
		return nil, fmt.Errorf("free: %w", err)
	}
	optr, olen := uint32(res[0]>>32), uint32(res[0])
	if int(olen) > m.cfg.MaxIO {
		return nil, ErrTooLarge
	}
	view, ok := inst.mem.Read(optr, olen)
	if !ok {
		return nil, errors.New("output out of memory range")
	}
	out := append([]byte(nil), view...)
	if _, err := free.Call(ctx, uint64(optr), uint64(olen)); err != nil {
		return nil, fmt.Errorf("free: %w", err)
	}
	return out, nil
}

// Close frees the runtime and every instance.
func (m *Module) Close(ctx context.Context) error { return m.runtime.Close(ctx) }
