package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestGeneratedCodeIsUpToDate regenerates the wire layer from the committed
// model and compares it with the committed files: a change to the generator
// or the model must come with a go generate.
func TestGeneratedCodeIsUpToDate(t *testing.T) {
	files, err := Generate(filepath.Join("..", "model", "codepipeline-2015-07-09.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 {
		t.Fatalf("generated %d files, want 3", len(files))
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join("..", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run go generate ./internal/wire", name)
		}
		if !bytes.HasPrefix(want, []byte("// Code generated")) {
			t.Errorf("%s lacks the generated-code marker", name)
		}
	}
}

// TestConnectionWireIsUpToDate does the same for the connection services'
// wire layers (internal/connwire), generated with -package.
func TestConnectionWireIsUpToDate(t *testing.T) {
	for _, c := range []struct{ model, pkg string }{
		{"codeconnections-2023-12-01.json.gz", "codeconnections"},
		{"codestar-connections-2019-12-01.json.gz", "codestar"},
	} {
		dir := filepath.Join("..", "..", "connwire")
		files, err := GenerateFor(filepath.Join(dir, "model", c.model), c.pkg)
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range files {
			got, err := os.ReadFile(filepath.Join(dir, c.pkg, name))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("connwire/%s/%s is stale: run go generate ./internal/connwire", c.pkg, name)
			}
		}
	}
}
