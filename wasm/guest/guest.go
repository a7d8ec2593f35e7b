//go:build wasip1

// Package guest is the module author's half of daskgate-abi/1: it exports
// the ABI marker and the allocator, decodes decision inputs, encodes
// outputs and wraps the host's log import, so a handler is a plain Go
// function plus a three-line export. Build with the standard toolchain:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o handler.wasm .
//
// Typical use:
//
//	//go:wasmexport options
//	func options(ptr, n uint32) uint64 { return guest.Options(ptr, n, handle) }
//
//	func handle(in guest.OptionsInput) guest.OptionsOutput {
//		return guest.OptionsOutput{Config: map[string]any{"worker_cores": in.Options["worker_cores"]}}
//	}
package guest

import (
	"encoding/json"
	"unsafe"
)

// live keeps buffers the host reads or writes reachable until it frees them.
var live = map[uint32][]byte{}

//go:wasmexport daskgate_abi_version
func abiVersion() int32 { return 1 }

//go:wasmexport daskgate_alloc
func alloc(n uint32) uint32 {
	b := make([]byte, max(n, 1))
	p := uint32(uintptr(unsafe.Pointer(&b[0])))
	live[p] = b
	return p
}

//go:wasmexport daskgate_free
func free(ptr, _ uint32) { delete(live, ptr) }

//go:wasmimport daskgate log
func hostLog(level int32, ptr, n uint32)

// Log writes msg to the server's log with the module's name; level is
// slog's: -4 debug, 0 info, 4 warn, 8 error.
func Log(level int, msg string) {
	if msg == "" {
		return
	}
	b := []byte(msg)
	hostLog(int32(level), uint32(uintptr(unsafe.Pointer(&b[0]))), uint32(len(b)))
}

func input(ptr, n uint32) []byte { return live[ptr][:n] }

func output(v any) uint64 {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": "encode output: " + err.Error()})
	}
	p := uint32(uintptr(unsafe.Pointer(&b[0])))
	live[p] = b
	return uint64(p)<<32 | uint64(len(b))
}

func failure(err error) uint64 { return output(map[string]string{"error": err.Error()}) }

// User is who the request acts for.
type User struct {
	Name   string   `json:"name"`
	Groups []string `json:"groups"`
	Admin  bool     `json:"admin"`
}

// InGroup reports whether the user is in group g.
func (u User) InGroup(g string) bool {
	for _, x := range u.Groups {
		if x == g {
			return true
		}
	}
	return false
}

// FieldsInput is the fields decision's input.
type FieldsInput struct {
	User User `json:"user"`
}

// FieldsOutput lists option fields, as in the config file's options.fields.
type FieldsOutput struct {
	Fields []map[string]any `json:"fields"`
}

// OptionsInput has the validated options by target (select values
// resolved) and by field name.
type OptionsInput struct {
	User    User           `json:"user"`
	Options map[string]any `json:"options"`
	Values  map[string]any `json:"values"`
}

// OptionsOutput is ClusterConfig overrides, or errors for the user.
type OptionsOutput struct {
	Config map[string]any `json:"config,omitempty"`
	Errors []string       `json:"errors,omitempty"`
}

// AuthorizeInput is one authorization question.
type AuthorizeInput struct {
	User       User           `json:"user"`
	Action     string         `json:"action"`
	Cluster    map[string]any `json:"cluster,omitempty"`
	Request    map[string]any `json:"request,omitempty"`
	Usage      map[string]any `json:"usage"`
	RemoteAddr string         `json:"remote_addr"`
}

// AuthorizeOutput allows or denies, with a reason shown to the user.
type AuthorizeOutput struct {
	Allow  bool   `json:"allow"`
	Reason string `json:"reason,omitempty"`
}

func handle[I, O any](ptr, n uint32, fn func(I) O) uint64 {
	var in I
	if err := json.Unmarshal(input(ptr, n), &in); err != nil {
		return failure(err)
	}
	return output(fn(in))
}

// Fields decodes the input at ptr, runs fn and returns the ABI result.
func Fields(ptr, n uint32, fn func(FieldsInput) FieldsOutput) uint64 { return handle(ptr, n, fn) }

// Options decodes the input at ptr, runs fn and returns the ABI result.
func Options(ptr, n uint32, fn func(OptionsInput) OptionsOutput) uint64 { return handle(ptr, n, fn) }

// Authorize decodes the input at ptr, runs fn and returns the ABI result.
func Authorize(ptr, n uint32, fn func(AuthorizeInput) AuthorizeOutput) uint64 {
	return handle(ptr, n, fn)
}
