package actiontypes

import (
	"strings"
	"testing"

	"github.com/pipelined/pipelined/internal/wire"
)

func TestFillURL(t *testing.T) {
	typ := New(Key{Category: "Deploy", Owner: "Custom", Provider: "P", Version: "1"}, nil, []wire.ActionConfigurationProperty{
		{Name: "Target", Required: wire.Ptr(true)},
		{Name: "Token", Required: wire.Ptr(true), Secret: wire.Ptr(true)},
		{Name: "Region", Required: wire.Ptr(false)},
	}, nil, nil)
	cfg := map[string]string{"Target": "prod", "Token": "sealed:v1:abc", "Region": "eu"}
	for _, c := range []struct {
		tmpl, externalID, revision string
		want                       string
		ok                         bool
	}{
		{"https://x/{Config:Target}", "", "", "https://x/prod", true},
		{"https://x/{Config:Target}/runs/{ExternalExecutionId}", "run-1", "", "https://x/prod/runs/run-1", true},
		{"https://x/{Config:Target}/runs/{ExternalExecutionId}", "", "", "", false}, // no id yet
		{"https://x/{Config:Target}/rev/{RevisionId}", "", "r1", "https://x/prod/rev/r1", true},
		{"https://x/{Config:Token}", "", "", "", false},  // secret: never in a URL
		{"https://x/{Config:Region}", "", "", "", false}, // not required
		{"https://x/{Config:Nope}", "", "", "", false},   // not declared
		{"https://x/static", "", "", "https://x/static", true},
		{"", "run-1", "", "", false},
	} {
		got, ok := typ.FillURL(c.tmpl, URLValues{Configuration: cfg, ExternalExecutionID: c.externalID, RevisionID: c.revision})
		if got != c.want || ok != c.ok {
			t.Errorf("FillURL(%q) = %q, %v; want %q, %v", c.tmpl, got, ok, c.want, c.ok)
		}
	}
	if _, ok := typ.FillURL("https://x/{Config:Target}", URLValues{}); ok {
		t.Error("a template filled without the property's value")
	}
}

// FuzzFillURL: any template and values: no panic, and a secret
// property's value never lands in a URL.
func FuzzFillURL(f *testing.F) {
	for _, seed := range []string{
		"https://x/{Config:Target}/runs/{ExternalExecutionId}",
		"https://x/{Config:Token}", "{Config:}", "{Config:Target", "https://x/{RevisionId}{Config:Target}",
	} {
		f.Add(seed, "prod", "run-1", "r1")
	}
	typ := New(Key{Category: "Deploy", Owner: "Custom", Provider: "P", Version: "1"}, nil, []wire.ActionConfigurationProperty{
		{Name: "Target", Required: wire.Ptr(true)},
		{Name: "Token", Required: wire.Ptr(true), Secret: wire.Ptr(true)},
	}, nil, nil)
	const secret = "SECRET-VALUE-never-in-a-url"
	f.Fuzz(func(t *testing.T, tmpl, target, externalID, revision string) {
		u, ok := typ.FillURL(tmpl, URLValues{Configuration: map[string]string{"Target": target, "Token": secret}, ExternalExecutionID: externalID, RevisionID: revision})
		if !ok && u != "" {
			t.Fatalf("FillURL(%q) = %q, not ok", tmpl, u)
		}
		if ok && strings.Contains(u, secret) && !strings.Contains(tmpl+target+externalID+revision, secret) {
			t.Fatalf("FillURL(%q) put the secret in %q", tmpl, u)
		}
	})
}
