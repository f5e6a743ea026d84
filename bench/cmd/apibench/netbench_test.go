package main

import (
	"strings"
	"testing"
	"time"
)

// The net report judges its targets from the numbers of one run.
func TestNetReportTargets(t *testing.T) {
	r := &netReport{o: &options{conns: 4}}
	r.reads = []readRow{
		{target: "no-op", call: "GetPipeline-shaped request", rate: rate{Requests: 1000, Elapsed: time.Second}},
		{target: "pipelined SQLite", call: "GetPipeline", rate: rate{Requests: 600, Elapsed: time.Second}},
		{target: "pipelined SQLite", call: "ListPipelines (maxResults 100)", rate: rate{Requests: 400, Elapsed: time.Second}},
	}
	r.idle = latency{N: 100, P50: time.Millisecond, P99: 2 * time.Millisecond}
	r.held = latency{N: 100, P50: time.Millisecond, P99: 5 * time.Millisecond}
	var b strings.Builder
	r.write(&b)
	out := b.String()
	for _, want := range []string{
		"| GetPipeline ≥ 50% of no-op | 600 req/s = 60.0% of no-op (1000 req/s) | met |",
		"| ListPipelines (maxResults 100) ≥ 50% of no-op | 400 req/s = 40.0% of no-op (1000 req/s) | **MISSED** |",
		"= 2.50× | **MISSED** |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
}
