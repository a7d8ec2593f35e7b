//go:build wasip1

package guest

import (
	"errors"
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

func output(v map[string]any) uint64 {
	b := appendJSON(nil, v)
	p := uint32(uintptr(unsafe.Pointer(&b[0])))
	live[p] = b
	return uint64(p)<<32 | uint64(len(b))
}

func failure(err error) uint64 { return output(map[string]any{"error": err.Error()}) }

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

// decode parses the input at ptr as a JSON object.
func decode(ptr, n uint32) (map[string]any, error) {
	v, err := parseJSON(input(ptr, n))
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("input is not a JSON object")
	}
	return m, nil
}

func object(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func user(v any) User {
	m := object(v)
	u := User{}
	u.Name, _ = m["name"].(string)
	u.Admin, _ = m["admin"].(bool)
	gs, _ := m["groups"].([]any)
	for _, g := range gs {
		if s, ok := g.(string); ok {
			u.Groups = append(u.Groups, s)
		}
	}
	return u
}

// Fields decodes the input at ptr, runs fn and returns the ABI result.
func Fields(ptr, n uint32, fn func(FieldsInput) FieldsOutput) uint64 {
	m, err := decode(ptr, n)
	if err != nil {
		return failure(err)
	}
	out := fn(FieldsInput{User: user(m["user"])})
	return output(map[string]any{"fields": out.Fields})
}

// Options decodes the input at ptr, runs fn and returns the ABI result.
// Numbers arrive as float64.
func Options(ptr, n uint32, fn func(OptionsInput) OptionsOutput) uint64 {
	m, err := decode(ptr, n)
	if err != nil {
		return failure(err)
	}
	out := fn(OptionsInput{User: user(m["user"]), Options: object(m["options"]), Values: object(m["values"])})
	res := map[string]any{}
	if len(out.Errors) > 0 {
		res["errors"] = out.Errors
	}
	if out.Config != nil {
		res["config"] = out.Config
	}
	return output(res)
}

// Authorize decodes the input at ptr, runs fn and returns the ABI result.
func Authorize(ptr, n uint32, fn func(AuthorizeInput) AuthorizeOutput) uint64 {
	m, err := decode(ptr, n)
	if err != nil {
		return failure(err)
	}
	in := AuthorizeInput{User: user(m["user"]), Cluster: object(m["cluster"]), Request: object(m["request"]),
		Usage: object(m["usage"])}
	in.Action, _ = m["action"].(string)
	in.RemoteAddr, _ = m["remote_addr"].(string)
	out := fn(in)
	res := map[string]any{"allow": out.Allow}
	if out.Reason != "" {
		res["reason"] = out.Reason
	}
	return output(res)
}
