//go:build wasip1

// Command misbehave is a test module whose options export does what
// input.options.mode says: "ok", "loop" (forever), "alloc" (without
// bound), "panic" (trap) or "error" (a structured error).
package main

import (
	"github.com/daskgate/daskgate/wasm/guest"
)

var hoard [][]byte

//go:wasmexport options
func options(ptr, n uint32) uint64 { return guest.Options(ptr, n, handle) }

//go:wasmexport authorize
func authorize(ptr, n uint32) uint64 {
	return guest.Authorize(ptr, n, func(in guest.AuthorizeInput) guest.AuthorizeOutput {
		if in.User.Name == "alice" {
			return guest.AuthorizeOutput{Allow: true}
		}
		return guest.AuthorizeOutput{Reason: "only alice, not " + in.User.Name}
	})
}

func handle(in guest.OptionsInput) guest.OptionsOutput {
	switch in.Options["mode"] {
	case "loop":
		for i := 0; ; i++ {
			if i < 0 {
				break
			}
		}
	case "alloc":
		for {
			hoard = append(hoard, make([]byte, 1<<20))
		}
	case "panic":
		panic("boom")
	case "error":
		return guest.OptionsOutput{Errors: []string{"mode error requested"}}
	}
	return guest.OptionsOutput{Config: map[string]any{"worker_cores": in.Options["n"]}}
}

func main() {}
