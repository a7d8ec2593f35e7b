package guest

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestParseJSONMatchesEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{"user":{"name":"alice","groups":["a","b"],"admin":false},"options":{"x":1.5,"y":-2e3,"z":null,"s":"q\"u\\o\u00e9\n"},"values":{}}`,
		`[]`, `{}`, `"x"`, `0`, `true`, ` [1, [2, {"a": []}]] `,
	} {
		got, err := parseJSON([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		var want any
		_ = json.Unmarshal([]byte(in), &want)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: got %#v want %#v", in, got, want)
		}
		var back any
		if err := json.Unmarshal(appendJSON(nil, got), &back); err != nil || !reflect.DeepEqual(back, want) {
			t.Fatalf("%s: re-encoded %s (%v)", in, appendJSON(nil, got), err)
		}
	}
	for _, bad := range []string{``, `{`, `{"a"}`, `[1,]`, `tru`, `"abc`, `{"a":1}x`, `01x`} {
		if _, err := parseJSON([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,"b",null,true]}`, `"\u00e9\\"`, `-1.5e10`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := parseJSON(in)
		var want any
		werr := json.Unmarshal(in, &want)
		if err == nil && werr != nil && json.Valid(in) {
			t.Fatalf("accepted what encoding/json rejects: %q", in)
		}
		if err == nil && werr == nil {
			var back any
			if json.Unmarshal(appendJSON(nil, got), &back) != nil || !reflect.DeepEqual(back, want) {
				t.Fatalf("round trip of %q differs", in)
			}
		}
	})
}
