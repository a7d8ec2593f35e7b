package options

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func mustSet(t *testing.T, fields []Field) *Set {
	t.Helper()
	s, err := New(fields)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

var allTypes = []Field{
	{Field: "worker_cores", Type: Int, Label: "Worker Cores", Default: raw("1"), Min: Num("1"), Max: Num("4")},
	{Field: "worker_memory", Type: Float, Label: "Worker Memory (GiB)", Default: raw("1"), Min: Num("1.0"), Max: Num("8.0")},
	{Field: "environment", Type: Select, Default: raw(`"basic"`),
		Options: []Choice{{Key: "basic", Value: "img:1"}, {Key: "tensorflow", Value: map[string]any{"image": "tf"}}}},
	{Field: "keep_logs", Type: Bool},
	{Field: "queue", Type: String, Label: "Queue"},
	{Field: "environ", Type: Mapping, Target: "env"},
}

func TestSpecJSON(t *testing.T) {
	got, err := json.Marshal(mustSet(t, allTypes))
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"field":"worker_cores","label":"Worker Cores","default":1,"spec":{"max":4,"min":1,"type":"int"}},` +
		`{"field":"worker_memory","label":"Worker Memory (GiB)","default":1,"spec":{"max":8.0,"min":1.0,"type":"float"}},` +
		`{"field":"environment","label":"environment","default":"basic","spec":{"options":["basic","tensorflow"],"type":"select"}},` +
		`{"field":"keep_logs","label":"keep_logs","default":false,"spec":{"type":"bool"}},` +
		`{"field":"queue","label":"Queue","default":"","spec":{"type":"string"}},` +
		`{"field":"environ","label":"environ","default":{},"spec":{"type":"mapping"}}]`
	if string(got) != want {
		t.Fatalf("spec\n got %s\nwant %s", got, want)
	}
	empty, _ := json.Marshal(&Set{})
	if string(empty) != "[]" {
		t.Fatalf("empty set = %s", empty)
	}
}

func TestParse(t *testing.T) {
	s := mustSet(t, allTypes)
	tests := []struct {
		name, in string
		want     string // JSON of values, or error substring after "ERR "
	}{
		{"absent", ``, `{"environ":{},"environment":"basic","keep_logs":false,"queue":"","worker_cores":1,"worker_memory":1}`},
		{"null", `null`, `{"environ":{},"environment":"basic","keep_logs":false,"queue":"","worker_cores":1,"worker_memory":1}`},
		{"all set", `{"worker_cores":2,"worker_memory":2,"environment":"tensorflow","keep_logs":true,"queue":"q","environ":{"A":1.50}}`,
			`{"environ":{"A":1.50},"environment":"tensorflow","keep_logs":true,"queue":"q","worker_cores":2,"worker_memory":2}`},
		{"int rejects float", `{"worker_cores":2.0}`, "ERR worker_cores must be an integer, got 2.0"},
		{"int rejects bool", `{"worker_cores":true}`, "ERR worker_cores must be an integer, got True"},
		{"int rejects null", `{"worker_cores":null}`, "ERR worker_cores must be an integer, got None"},
		{"int max", `{"worker_cores":10}`, "ERR worker_cores must be <= 4.000000, got 10"},
		{"int min", `{"worker_cores":0}`, "ERR worker_cores must be >= 1.000000, got 0"},
		{"float max", `{"worker_memory":8.5}`, "ERR worker_memory must be <= 8.000000, got 8.5"},
		{"float type", `{"worker_memory":"1"}`, "ERR worker_memory must be a float, got '1'"},
		{"select bad", `{"environment":"gpu"}`, "ERR 'gpu' is not a valid option for environment"},
		{"select type", `{"environment":1}`, "ERR environment must be a string, got 1"},
		{"bool type", `{"keep_logs":1}`, "ERR keep_logs must be a bool, got 1"},
		{"string type", `{"queue":["a"]}`, "ERR queue must be a string, got ['a']"},
		{"mapping type", `{"environ":[1]}`, "ERR environ must be a mapping, got [1]"},
		{"unknown sorted", `{"zz":1,"aa":2}`, "ERR Unknown fields ['aa', 'zz']"},
		{"not a dict", `[1]`, "ERR options must be a dict, got 'list'"},
		{"every error", `{"worker_cores":0,"queue":1}`, "ERR worker_cores must be >= 1.000000, got 0; queue must be a string, got 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := s.Parse(raw(tt.in))
			if msg, ok := strings.CutPrefix(tt.want, "ERR "); ok {
				if err == nil || err.Error() != msg {
					t.Fatalf("err = %v, want %q", err, msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(v)
			if string(got) != tt.want {
				t.Fatalf("got %s want %s", got, tt.want)
			}
		})
	}
}

func TestTransform(t *testing.T) {
	s := mustSet(t, allTypes)
	v, err := s.Parse(raw(`{"environment":"tensorflow","environ":{"X":"y"}}`))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(s.Transform(v))
	want := `{"env":{"X":"y"},"environment":{"image":"tf"},"keep_logs":false,"queue":"","worker_cores":1,"worker_memory":1}`
	if string(got) != want {
		t.Fatalf("got %s want %s", got, want)
	}
}

func TestMappingDefaultIsCopied(t *testing.T) {
	s := mustSet(t, []Field{{Field: "m", Type: Mapping, Default: raw(`{"a":{"b":1}}`)}})
	v1, _ := s.Parse(nil)
	v1["m"].(map[string]any)["a"].(map[string]any)["b"] = "changed"
	v2, _ := s.Parse(nil)
	if got, _ := json.Marshal(v2); string(got) != `{"m":{"a":{"b":1}}}` {
		t.Fatalf("default was shared: %s", got)
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := New([]Field{
		{Field: "1bad", Type: String},
		{Field: "x", Type: "nope"},
		{Field: "y", Type: Int, Min: Num("1.5")},
		{Field: "z", Type: Select},
		{Field: "w", Type: Int, Default: raw(`"one"`)},
		{Field: "v", Type: String, Min: Num("1")},
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"fields[0] (1bad)", "fields[1] (x): unknown type", "fields[2] (y): int bounds",
		"fields[3] (z): there must be at least one option", "fields[4] (w): invalid default", "fields[5] (v): min and max"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestChoiceSpellings(t *testing.T) {
	var cs []Choice
	if err := json.Unmarshal(raw(`["a", ["b", 2], {"key": "c", "value": {"x": 1}}, {"key": "d"}]`), &cs); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(cs)
	if want := `[{"key":"a","value":"a"},{"key":"b","value":2},{"key":"c","value":{"x":1}},{"key":"d","value":"d"}]`; string(got) != want {
		t.Fatalf("got %s want %s", got, want)
	}
	if err := json.Unmarshal(raw(`[1]`), &cs); err == nil {
		t.Fatal("numeric key accepted")
	}
}

func FuzzParse(f *testing.F) {
	s, _ := New(allTypes)
	for _, seed := range []string{`{}`, `{"worker_cores":2}`, `{"environ":{"a":[1,{"b":null}]}}`, `[`, `{"queue":"\u0000"}`, `1e999`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		v, err := s.Parse(raw(in))
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if _, err := json.Marshal(v); err != nil {
			t.Fatalf("values do not encode: %v", err)
		}
		if len(v) != s.Len() {
			t.Fatalf("got %d values for %d fields", len(v), s.Len())
		}
	})
}

func ExampleSet_Parse() {
	s, _ := New([]Field{{Field: "worker_cores", Type: Int, Default: json.RawMessage("1"), Max: Num("4")}})
	_, err := s.Parse(json.RawMessage(`{"worker_cores": 8}`))
	fmt.Println(err)
	// Output: worker_cores must be <= 4.000000, got 8
}
