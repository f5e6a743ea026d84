package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i))
	}
	for _, tc := range []struct{ p, want int }{{50, 50}, {99, 99}, {100, 100}, {1, 1}} {
		if got := percentile(s, tc.p); got != time.Duration(tc.want) {
			t.Errorf("percentile(1..100, %d) = %d, want %d", tc.p, got, tc.want)
		}
	}
	if got := percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("percentile of one sample = %d, want 7", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile of none = %d, want 0", got)
	}
}

func TestWithSearchPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://u@h:5432/db?sslmode=disable", "postgres://u@h:5432/db?sslmode=disable&options=-c%20search_path%3Dbench_x"},
		{"postgres://u@h/db", "postgres://u@h/db?options=-c%20search_path%3Dbench_x"},
		{"postgres://u@h/db?options=-c%20work_mem%3D1MB", "postgres://u@h/db?options=-c%20work_mem%3D1MB&options=-c%20work_mem%3D1MB%20-c%20search_path%3Dbench_x"},
	} {
		got, err := withSearchPath(tc.in, "bench_x")
		if err != nil || got != tc.want {
			t.Errorf("withSearchPath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := withSearchPath("host=h dbname=db", "bench_x"); err == nil {
		t.Error("keyword/value DSN accepted; pipelined takes URLs only")
	}
}

func TestShellQuote(t *testing.T) {
	got := commandLine([]string{"-duration", "3s", "-postgres", "postgres://h/db?sslmode=disable&x=1", "-out", "it's.md"})
	want := `go run ./bench/cmd/apibench -duration 3s -postgres 'postgres://h/db?sslmode=disable&x=1' -out 'it'\''s.md'`
	if got != want {
		t.Errorf("commandLine = %s\nwant          %s", got, want)
	}
}

// TestThroughputCountsErrors checks that failed requests are counted and
// reported, not mistaken for throughput, and that requests are signed.
func TestThroughputCountsErrors(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential="+accessKeyID+"/") {
			http.Error(w, "unsigned", http.StatusForbidden)
			return
		}
		if n.Add(1)%2 == 0 {
			http.Error(w, `{"__type":"InternalFailure"}`, http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("{}"))
	}))
	defer srv.Close()
	c := newClient(2, srv.URL)
	defer c.close()

	res, err := throughput(context.Background(), c, 2, 200*time.Millisecond, fixedCall(getReq), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests == 0 || res.Errors == 0 {
		t.Fatalf("requests %d, errors %d; want both > 0", res.Requests, res.Errors)
	}
	if !strings.Contains(res.FirstErr, "HTTP 500") || !strings.Contains(res.FirstErr, "InternalFailure") {
		t.Errorf("first error %q does not name the status and body", res.FirstErr)
	}
}

func TestUpdateBody(t *testing.T) {
	tmpl := &template{pipeline: map[string]any{
		"name":   "x",
		"stages": []any{map[string]any{"actions": []any{map[string]any{"configuration": map[string]any{"CustomData": "a"}}}}},
	}}
	body := string(tmpl.updateBody("p1", 7, 3))
	for _, want := range []string{`"name":"p1"`, `"version":7`, `"CustomData":"Ship it? (update 3)"`} {
		if !strings.Contains(body, want) {
			t.Errorf("update body %s lacks %s", body, want)
		}
	}
	if tmpl.pipeline["name"] != "x" {
		t.Error("updateBody changed the template")
	}
}
