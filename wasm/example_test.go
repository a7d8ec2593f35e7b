package wasm_test

import (
	"context"
	"fmt"

	"github.com/daskgate/daskgate/wasm"
)

// A module is compiled once by Load; each Call takes a pooled instance
// under the timeout and memory cap. testdata/minimal is the smallest
// daskgate-abi/1 module: its options decision always answers two cores.
func ExampleLoad() {
	ctx := context.Background()
	m, err := wasm.Load(ctx, wasm.Config{Path: "testdata/minimal/minimal.wasm"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close(ctx)
	out, err := m.Call(ctx, "options", []byte(`{"user": {"name": "alice"}, "options": {}}`))
	fmt.Println(string(out), err)
	// Output: {"config":{"worker_cores":2}} <nil>
}
