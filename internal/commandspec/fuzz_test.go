package commandspec

import (
	"strings"
	"testing"

	"github.com/pipelined/pipelined/internal/wire"
)

// FuzzDecodeAndLabels: the spec decoder and the label parser never panic,
// and a label string they accept is canonical (parsing it again gives it).
func FuzzDecodeAndLabels(f *testing.F) {
	f.Add(`{"commands":["make"],"outputVariables":["A"],"files":["dist/**"]}`, "ComputeType=BUILD_GENERAL1_SMALL,EnvironmentType=LINUX_CONTAINER")
	f.Add(`{"commands":[]}`, "EnvironmentType=x,,")
	f.Add(`nope`, "Other=1")
	f.Fuzz(func(t *testing.T, spec, labels string) {
		if s, err := Decode(map[string]string{SpecKey: spec}); err == nil && len(s.Commands) == 0 {
			t.Fatal("a spec without commands decoded")
		}
		canon, err := ParseLabels(labels)
		if err != nil {
			return
		}
		again, err := ParseLabels(canon)
		if err != nil || again != canon {
			t.Fatalf("%q → %q → %q, %v", labels, canon, again, err)
		}
	})
}

// FuzzGlob: a glob Validate accepts compiles, and never matches a path
// reaching outside the directory.
func FuzzGlob(f *testing.F) {
	for _, g := range []string{"**/*", "dist/", "a/**/b/*.go", "{a,b}/[!x]?", "../x", "/abs"} {
		f.Add(g, "a/b/c.go")
	}
	f.Fuzz(func(t *testing.T, glob, path string) {
		ad := &wire.ActionDeclaration{Name: "A", Commands: []string{"true"},
			OutputArtifacts: []wire.OutputArtifact{{Name: "O", Files: []string{glob}}}}
		if Validate(ad) != "" {
			return
		}
		g, err := CompileGlob(glob)
		if err != nil {
			t.Fatalf("accepted glob %q does not compile: %v", glob, err)
		}
		if strings.HasPrefix(path, "../") && g.Match(path) && !strings.Contains(glob, "*") {
			t.Fatalf("glob %q matches %q", glob, path)
		}
	})
}
