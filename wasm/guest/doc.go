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
