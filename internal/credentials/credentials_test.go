package credentials

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateThenReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "credentials")
	r, src, err := Load("", "", path)
	if err != nil || src != Generated {
		t.Fatalf("Load = %v, %v", src, err)
	}
	if len(r.AccessKeyID) != 20 || len(r.SecretAccessKey) != 40 {
		t.Fatalf("unexpected key shapes: %d %d", len(r.AccessKeyID), len(r.SecretAccessKey))
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, %v", fi.Mode(), err)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "[default]") || !strings.Contains(string(b), "aws_secret_access_key = "+r.SecretAccessKey) {
		t.Fatalf("file is not in shared-credentials format:\n%s", b)
	}
	again, src, err := Load("", "", path)
	if err != nil || src != FromFile || again != r {
		t.Fatalf("reload = %+v %v %v", again, src, err)
	}
}

func TestEnvironmentWinsAndMustBeComplete(t *testing.T) {
	path := filepath.Join(t.TempDir(), "credentials")
	r, src, err := Load("AKIDEXAMPLE", "secret", path)
	if err != nil || src != FromEnvironment || r.AccessKeyID != "AKIDEXAMPLE" {
		t.Fatalf("Load = %+v %v %v", r, src, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("a file was written although the environment gave credentials")
	}
	if _, _, err := Load("AKIDEXAMPLE", "", path); err == nil {
		t.Fatal("half-set environment accepted")
	}
}
