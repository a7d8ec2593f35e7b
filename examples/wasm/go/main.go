//go:build wasip1

// Command handler is a daskgate options handler written in plain Go and
// compiled to WebAssembly with the standard toolchain (make examples):
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o handler.wasm ./examples/wasm/go
//
// It ports the two upstream seed handlers: worker cores, memory (GiB) and
// image as fields, and an image that must carry a tag.
package main

import (
	"math"
	"strings"

	"github.com/daskgate/daskgate/wasm/guest"
)

//go:wasmexport fields
func fields(ptr, n uint32) uint64 { return guest.Fields(ptr, n, optionFields) }

//go:wasmexport options
func options(ptr, n uint32) uint64 { return guest.Options(ptr, n, handle) }

func optionFields(guest.FieldsInput) guest.FieldsOutput {
	return guest.FieldsOutput{Fields: []map[string]any{
		{"field": "worker_cores", "type": "int", "default": 2, "min": 1, "max": 4, "label": "Worker Cores"},
		{"field": "worker_memory", "type": "float", "default": 4, "min": 1, "max": 8, "label": "Worker Memory (GiB)"},
		{"field": "image", "type": "string", "default": "daskgateway/dask-gateway:latest", "label": "Image"},
	}}
}

func handle(in guest.OptionsInput) guest.OptionsOutput {
	image, _ := in.Options["image"].(string)
	if !strings.Contains(image, ":") {
		return guest.OptionsOutput{Errors: []string{"When specifying an image you must also provide a tag"}}
	}
	gib, _ := in.Options["worker_memory"].(float64)
	guest.Log(-4, "options for "+in.User.Name)
	return guest.OptionsOutput{Config: map[string]any{
		"worker_cores":  in.Options["worker_cores"],
		"worker_memory": int64(math.Round(gib * (1 << 30))),
		"image":         image,
	}}
}

func main() {}
