package console

import (
	"strings"
	"testing"
)

func TestTemplatesCompile(t *testing.T) {
	pages, err := parseTemplates()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"signin", "error", "pipelines", "pipeline", "executions", "execution", "approvals", "review", "settings"} {
		if pages[want] == nil {
			t.Errorf("no template for page %s", want)
		}
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/console/approvals":          "/console/approvals",
		"https://evil.example/":       "/console/pipelines",
		"//evil.example/console/":     "/console/pipelines",
		"/console/\\evil":             "/console/pipelines",
		"/console/x\r\nSet-Cookie: a": "/console/pipelines",
		"":                            "/console/pipelines",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSafeURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://ci.example/run/1": "https://ci.example/run/1",
		"javascript:alert(1)":      "",
		"JAVASCRIPT:alert(1)":      "",
		"data:text/html,x":         "",
		"/relative":                "",
	} {
		if got := safeURL(in); got != want {
			t.Errorf("safeURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzParseVariables(f *testing.F) {
	f.Add("A=1\nB=two=2\n")
	f.Add("\r\n=x\n")
	f.Add("novalue")
	f.Fuzz(func(t *testing.T, s string) {
		vars, err := parseVariables(s)
		if err != nil {
			return
		}
		for _, v := range vars {
			if strings.TrimSpace(v.Name) == "" || strings.ContainsAny(v.Name, "\r\n") || strings.ContainsAny(v.Value, "\n") {
				t.Fatalf("parseVariables(%q) gave %+v", s, v)
			}
		}
	})
}
