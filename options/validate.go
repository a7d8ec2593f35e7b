package options

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// validate checks one decoded JSON value against the field and returns the
// value in its stored form. Messages follow upstream's wording, with Python
// reprs, so users see what they would see with dask-gateway-server.
func (f Field) validate(x any) (any, error) {
	switch f.Type {
	case String:
		if s, ok := x.(string); ok {
			return s, nil
		}
		return nil, fmt.Errorf("%s must be a string, got %s", f.Field, pyRepr(x))
	case Bool:
		if b, ok := x.(bool); ok {
			return b, nil
		}
		return nil, fmt.Errorf("%s must be a bool, got %s", f.Field, pyRepr(x))
	case Int:
		n, ok := x.(json.Number)
		if !ok || !isInteger(n) {
			return nil, fmt.Errorf("%s must be an integer, got %s", f.Field, pyRepr(x))
		}
		i, err := n.Int64()
		if err != nil {
			return nil, fmt.Errorf("%s must be an integer that fits in 64 bits, got %s", f.Field, n)
		}
		return i, f.checkBounds(float64(i), string(n))
	case Float:
		n, ok := x.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%s must be a float, got %s", f.Field, pyRepr(x))
		}
		v, err := n.Float64()
		if err != nil || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%s must be a finite float, got %s", f.Field, n)
		}
		return v, f.checkBounds(v, pyFloat(v))
	case Select:
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("%s must be a string, got %s", f.Field, pyRepr(x))
		}
		for _, c := range f.Options {
			if c.Key == s {
				return s, nil
			}
		}
		return nil, fmt.Errorf("%s is not a valid option for %s", pyRepr(s), f.Field)
	case Mapping:
		if m, ok := x.(map[string]any); ok {
			return m, nil
		}
		return nil, fmt.Errorf("%s must be a mapping, got %s", f.Field, pyRepr(x))
	}
	return nil, fmt.Errorf("%s has unknown type %q", f.Field, f.Type)
}

func (f Field) checkBounds(v float64, shown string) error {
	if f.Min != nil && v < toFloat(*f.Min) {
		return fmt.Errorf("%s must be >= %f, got %s", f.Field, toFloat(*f.Min), shown)
	}
	if f.Max != nil && v > toFloat(*f.Max) {
		return fmt.Errorf("%s must be <= %f, got %s", f.Field, toFloat(*f.Max), shown)
	}
	return nil
}

func isInteger(n json.Number) bool {
	return !strings.ContainsAny(string(n), ".eE")
}

func toFloat(n json.Number) float64 {
	f, _ := n.Float64()
	return f
}

// pyFloat formats like Python's str(float): always with a decimal point or
// an exponent.
func pyFloat(v float64) string {
	s := strconv.FormatFloat(v, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEn") {
		s += ".0"
	}
	return s
}

// pyRepr renders a decoded JSON value the way Python's repr would.
func pyRepr(x any) string {
	switch v := x.(type) {
	case nil:
		return "None"
	case bool:
		if v {
			return "True"
		}
		return "False"
	case string:
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`).Replace(v) + "'"
	case json.Number:
		return string(v)
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = pyRepr(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = pyRepr(k) + ": " + pyRepr(v[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(x)
}

// pyType names a decoded JSON value's Python type.
func pyType(x any) string {
	switch v := x.(type) {
	case nil:
		return "NoneType"
	case bool:
		return "bool"
	case string:
		return "str"
	case json.Number:
		if isInteger(v) {
			return "int"
		}
		return "float"
	case []any:
		return "list"
	case map[string]any:
		return "dict"
	}
	return fmt.Sprintf("%T", x)
}

func sortedAny(ss []string) []any {
	sort.Strings(ss)
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
