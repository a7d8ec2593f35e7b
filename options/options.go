// Package options declares the typed cluster option fields that users may set
// when they create a cluster, renders them as the JSON spec the Python
// dask-gateway client rebuilds its Options object from, and validates and
// transforms the values a client sends.
//
// Typical use:
//
//	set, err := options.New([]options.Field{
//		{Field: "worker_cores", Type: options.Int, Default: json.RawMessage("1"), Min: options.Num("1"), Max: options.Num("4")},
//	})
//	spec, _ := json.Marshal(set)                  // GET /api/v1/options body
//	vals, err := set.Parse(body["cluster_options"]) // every bad field reported
//	overrides := set.Transform(vals)              // target -> value, Select key -> value
package options

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Type names a field type as it appears in the JSON spec ("spec.type").
type Type string

// The six field types the Python client knows.
const (
	String  Type = "string"
	Bool    Type = "bool"
	Int     Type = "int"
	Float   Type = "float"
	Select  Type = "select"
	Mapping Type = "mapping"
)

// Field declares one option. It is what an administrator writes in the
// config file (or a policy returns), with JSON tags matching the YAML keys.
type Field struct {
	// Field is the name users set; it must be a Python identifier.
	Field string `json:"field"`
	// Type is one of string, bool, int, float, select, mapping.
	Type Type `json:"type"`
	// Label is shown in GUIs; empty means the field name.
	Label string `json:"label,omitempty"`
	// Default is the value used when the user leaves the field out; empty
	// means the type's default ("" / false / 0 / first key / {}).
	Default json.RawMessage `json:"default,omitempty"`
	// Min and Max bound int and float fields (inclusive); nil means unbounded.
	Min *json.Number `json:"min,omitempty"`
	Max *json.Number `json:"max,omitempty"`
	// Options lists a select field's choices in display order.
	Options []Choice `json:"options,omitempty"`
	// Target is the key the transformed value is handed on under; empty
	// means Field.
	Target string `json:"target,omitempty"`
}

// Choice is one option of a select field: a key shown to users and the
// value (any JSON) it stands for on the server. It decodes from "key",
// ["key", value] or {"key": ..., "value": ...}; a bare key's value is the key.
type Choice struct {
	Key   string `json:"key"`
	Value any    `json:"value,omitempty"`
}

// UnmarshalJSON accepts the three spellings described on Choice.
func (c *Choice) UnmarshalJSON(b []byte) error {
	var key string
	if err := json.Unmarshal(b, &key); err == nil {
		*c = Choice{Key: key, Value: key}
		return nil
	}
	var pair []json.RawMessage
	if err := json.Unmarshal(b, &pair); err == nil {
		if len(pair) != 2 || json.Unmarshal(pair[0], &key) != nil {
			return errors.New("select option pairs must be [key, value] with a string key")
		}
		v, err := decodeValue(pair[1])
		*c = Choice{Key: key, Value: v}
		return err
	}
	var obj struct {
		Key   *string         `json:"key"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(b, &obj); err != nil || obj.Key == nil {
		return fmt.Errorf("select keys must be strings, got %s", b)
	}
	c.Key, c.Value = *obj.Key, *obj.Key
	if len(obj.Value) > 0 {
		v, err := decodeValue(obj.Value)
		c.Value = v
		return err
	}
	return nil
}

// Num is a convenience for writing Min and Max in Go code.
func Num(s string) *json.Number { n := json.Number(s); return &n }

// Set is a validated, ordered list of fields. The zero value has no fields.
type Set struct {
	fields   []Field
	defaults []any
}

var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// New checks every field and its default and returns all problems at once,
// each prefixed with the field's position and name.
func New(fields []Field) (*Set, error) {
	s := &Set{fields: make([]Field, len(fields)), defaults: make([]any, len(fields))}
	var errs []error
	seen := map[string]bool{}
	for i, f := range fields {
		where := fmt.Sprintf("fields[%d] (%s)", i, f.Field)
		if err := checkField(f, seen); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		seen[f.Field] = true
		def, err := f.defaultValue()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: invalid default: %w", where, err))
			continue
		}
		s.fields[i], s.defaults[i] = f, def
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

func checkField(f Field, seen map[string]bool) error {
	switch {
	case !identRe.MatchString(f.Field):
		return errors.New("field must be a valid identifier")
	case seen[f.Field]:
		return errors.New("field declared twice")
	case f.Target != "" && !identRe.MatchString(f.Target):
		return errors.New("target must be a valid identifier")
	}
	numeric := f.Type == Int || f.Type == Float
	switch f.Type {
	case String, Bool, Int, Float, Select, Mapping:
	default:
		return fmt.Errorf("unknown type %q (want string, bool, int, float, select or mapping)", f.Type)
	}
	if !numeric && (f.Min != nil || f.Max != nil) {
		return fmt.Errorf("min and max only apply to int and float fields")
	}
	if f.Type != Select && len(f.Options) > 0 {
		return fmt.Errorf("options only apply to select fields")
	}
	if f.Type == Int {
		for _, b := range []*json.Number{f.Min, f.Max} {
			if b != nil && !isInteger(*b) {
				return fmt.Errorf("int bounds must be integers, got %s", *b)
			}
		}
	}
	if numeric && f.Min != nil && f.Max != nil && toFloat(*f.Min) > toFloat(*f.Max) {
		return errors.New("min is greater than max")
	}
	if f.Type == Select {
		return checkChoices(f.Options)
	}
	return nil
}

func checkChoices(cs []Choice) error {
	if len(cs) == 0 {
		return errors.New("there must be at least one option")
	}
	keys := map[string]bool{}
	for _, c := range cs {
		if keys[c.Key] {
			return fmt.Errorf("option %q listed twice", c.Key)
		}
		keys[c.Key] = true
	}
	return nil
}

func (f Field) defaultValue() (any, error) {
	if len(bytes.TrimSpace(f.Default)) == 0 {
		switch f.Type {
		case String:
			return "", nil
		case Bool:
			return false, nil
		case Int:
			return int64(0), nil
		case Float:
			return float64(0), nil
		case Select:
			return f.Options[0].Key, nil
		case Mapping:
			return map[string]any{}, nil
		}
	}
	v, err := decodeValue(f.Default)
	if err != nil {
		return nil, err
	}
	return f.validate(v)
}

// Len reports the number of fields.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.fields)
}

// Fields returns a copy of the declared fields, in order.
func (s *Set) Fields() []Field {
	if s == nil {
		return nil
	}
	return append([]Field(nil), s.fields...)
}

type fieldSpec struct {
	Field   string         `json:"field"`
	Label   string         `json:"label"`
	Default any            `json:"default"`
	Spec    map[string]any `json:"spec"`
}

// MarshalJSON renders the list the client's Options._from_spec expects:
// [{"field","label","default","spec":{"type",...}}], with exactly the spec
// keys each client field class accepts.
func (s *Set) MarshalJSON() ([]byte, error) {
	out := make([]fieldSpec, 0, s.Len())
	for i, f := range s.Fields() {
		spec := map[string]any{"type": f.Type}
		switch f.Type {
		case Int, Float:
			spec["min"], spec["max"] = f.Min, f.Max
		case Select:
			keys := make([]string, len(f.Options))
			for j, c := range f.Options {
				keys[j] = c.Key
			}
			spec["options"] = keys
		}
		label := f.Label
		if label == "" {
			label = f.Field
		}
		def := s.defaults[i]
		if f.Type == Float && len(f.Default) > 0 {
			def = json.RawMessage(f.Default) // "stored as given"
		}
		out = append(out, fieldSpec{Field: f.Field, Label: label, Default: def, Spec: spec})
	}
	return json.Marshal(out)
}

// Values holds validated option values by field name: string, bool, int64,
// float64 or map[string]any (numbers inside mappings stay json.Number).
type Values map[string]any

// Parse validates a create request's "cluster_options" (absent, null or an
// object). Every field not given takes its default. All problems are
// reported, joined by "; ", each naming its field.
func (s *Set) Parse(raw json.RawMessage) (Values, error) {
	req, err := decodeRequest(raw)
	if err != nil {
		return nil, err
	}
	var msgs []string
	if unknown := s.unknown(req); len(unknown) > 0 {
		msgs = append(msgs, "Unknown fields "+pyRepr(unknown))
	}
	vals := make(Values, s.Len())
	for i, f := range s.Fields() {
		raw, ok := req[f.Field]
		if !ok {
			vals[f.Field] = copyDefault(s.defaults[i])
			continue
		}
		v, err := f.validate(raw)
		if err != nil {
			msgs = append(msgs, err.Error())
			continue
		}
		vals[f.Field] = v
	}
	if len(msgs) > 0 {
		return nil, &Error{Messages: msgs}
	}
	return vals, nil
}

// Error lists every validation problem of one request.
type Error struct{ Messages []string }

func (e *Error) Error() string { return strings.Join(e.Messages, "; ") }

func decodeRequest(raw json.RawMessage) (map[string]any, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return map[string]any{}, nil
	}
	v, err := decodeValue(raw)
	if err != nil {
		return nil, &Error{Messages: []string{"cluster_options is not valid JSON: " + err.Error()}}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &Error{Messages: []string{fmt.Sprintf("options must be a dict, got '%s'", pyType(v))}}
	}
	return m, nil
}

func (s *Set) unknown(req map[string]any) []any {
	known := make(map[string]bool, s.Len())
	for _, f := range s.Fields() {
		known[f.Field] = true
	}
	var out []string
	for k := range req {
		if !known[k] {
			out = append(out, k)
		}
	}
	return sortedAny(out)
}

// Transform maps validated values to their targets, replacing each select
// key with its value. The result is what an option handler receives.
func (s *Set) Transform(v Values) map[string]any {
	out := make(map[string]any, s.Len())
	for _, f := range s.Fields() {
		target := f.Target
		if target == "" {
			target = f.Field
		}
		val := v[f.Field]
		if f.Type == Select {
			for _, c := range f.Options {
				if c.Key == val {
					val = c.Value
				}
			}
		}
		out[target] = val
	}
	return out
}

func copyDefault(v any) any {
	if m, ok := v.(map[string]any); ok {
		b, _ := json.Marshal(m)
		c, _ := decodeValue(b)
		return c
	}
	return v
}

// decodeValue decodes JSON keeping numbers as json.Number, so 2 and 2.0
// stay distinct.
func decodeValue(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after JSON value")
	}
	return v, nil
}
