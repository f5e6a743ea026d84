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
