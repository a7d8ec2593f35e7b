package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/daskgate/daskgate/options"
)

func topLevelKey(k string) bool {
	_, ok := jsonFields(reflect.TypeFor[Config]())[k]
	return ok
}

// checkKeys walks the decoded YAML beside the Config type and reports
// every key the schema does not have, by its dotted path.
func checkKeys(tree map[string]any) error {
	var unknown []string
	walk(reflect.TypeFor[Config](), tree, "", &unknown)
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	return fmt.Errorf("unknown key(s): %s", strings.Join(unknown, ", "))
}

// Types decoded by their own UnmarshalJSON accept any shape; their
// errors come from decoding.
var opaque = map[reflect.Type]bool{reflect.TypeFor[options.Choice](): true}

func walk(t reflect.Type, v any, path string, unknown *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if opaque[t] {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return // a type error, reported when decoding
		}
		fields := jsonFields(t)
		for k, sub := range m {
			f, ok := fields[k]
			if !ok {
				*unknown = append(*unknown, join(path, k))
				continue
			}
			walk(f.Type, sub, join(path, k), unknown)
		}
	case reflect.Slice:
		if l, ok := v.([]any); ok && t.Elem().Kind() == reflect.Struct {
			for i, e := range l {
				walk(t.Elem(), e, fmt.Sprintf("%s[%d]", path, i), unknown)
			}
		}
	}
}

// keyType is the Go type a dotted key path decodes into, or nil when the
// path leaves the schema (an unknown key, reported by checkKeys, or the
// inside of a list or map).
func keyType(path []string) reflect.Type {
	t := reflect.TypeFor[Config]()
	for _, k := range path {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return nil
		}
		f, ok := jsonFields(t)[k]
		if !ok {
			return nil
		}
		t = f.Type
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func jsonFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		name := strings.Split(f.Tag.Get("json"), ",")[0]
		if name != "" && name != "-" {
			out[name] = f
		}
	}
	return out
}
