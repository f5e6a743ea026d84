package wire

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"
)

// FuzzDecode feeds arbitrary bodies to every operation's decoder and
// validator. No input may panic, and every failure must be an API error
// (*Error), which the transport answers with a 4xx.
func FuzzDecode(f *testing.F) {
	names := make([]string, 0, len(Operations))
	for n := range Operations {
		names = append(names, n)
	}
	sort.Strings(names)
	seeds := []string{
		``, `{}`, `null`, `[]`, `{"name":"p"}`, `{"name":5}`, `{"pipeline":{"name":"x","stages":[{}]}}`,
		`{"pipeline":{"name":"a b","roleArn":"r","stages":[{"name":"s","actions":[{"name":"a","runOrder":0,"configuration":{"":"v"}}]}],"artifactStores":{"x":{}}}}`,
		`{"maxResults":1e400}`, `{"maxResults":-1}`, `{"created":"2024-01-01T00:00:00Z"}`, `{"tags":[{"key":"k"}]}`,
		"{\"name\":\"\xff\xfe\"}", `{"pipeline":{"version":99999999999999999999}}`,
		`"x"`, `{"pipeline":5}`, `{"pipeline":{"stages":{}}}`, `{"pipeline":{"stages":[{"actions":[{"configuration":[]}]}]}}`,
		`{"pipeline":{"stages":[{"actions":[{"actionTypeId":{"category":5}}]}]}}`, `{"created":"soon"}`, `{"tags":"t"}`,
	}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s))
	}
	f.Fuzz(func(t *testing.T, op uint8, body []byte) {
		o := Operations[names[int(op)%len(names)]]
		_, err := o.Call(context.Background(), Unimplemented{}, body)
		if err == nil {
			t.Fatalf("%s: Unimplemented answered without an error", o.Name)
		}
		e, ok := AsError(err)
		if !ok {
			t.Fatalf("%s: error %v (%T) is not an API error", o.Name, err, err)
		}
		// Messages speak JSON and the model, never Go.
		if e.Code == ErrSerialization && (strings.Contains(e.Message, "wire.") || strings.Contains(e.Message, "Go ") || strings.Contains(e.Message, "map[") || strings.Contains(e.Message, "[]")) {
			t.Fatalf("%s: message names Go types: %s", o.Name, e.Message)
		}
	})
}

func TestTimestampRoundTrip(t *testing.T) {
	var ts Timestamp
	if err := ts.UnmarshalJSON([]byte("1700000000.123")); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(ts)
	if string(b) != "1700000000.123" {
		t.Fatalf("round trip = %s", b)
	}
	if got := ts.Time(); got.UnixMilli() != 1700000000123 {
		t.Fatalf("Time() = %v", got)
	}
	now := time.Date(2026, 11, 21, 10, 0, 0, 123456789, time.UTC)
	b, _ = json.Marshal(TimeOf(now))
	if string(b) != "1795255200.123" {
		t.Fatalf("TimeOf encodes as %s", b)
	}
	for _, bad := range []string{`"yesterday"`, `1e300`, `NaN`, `{}`} {
		if err := ts.UnmarshalJSON([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}
