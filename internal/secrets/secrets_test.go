package secrets

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testSealer(t *testing.T) *Sealer {
	t.Helper()
	s, err := New(bytes.Repeat([]byte{7}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealOpenRoundTrip(t *testing.T) {
	s := testSealer(t)
	sealed := s.Seal("hunter2", "pipeline/p/action/a/Token")
	if strings.Contains(sealed, "hunter2") || !IsSealed(sealed) {
		t.Fatalf("sealed value leaks or lacks prefix: %q", sealed)
	}
	if again := s.Seal("hunter2", "pipeline/p/action/a/Token"); again == sealed {
		t.Fatal("two seals of one value are identical: nonce reuse")
	}
	got, err := s.Open(sealed, "pipeline/p/action/a/Token")
	if err != nil || got != "hunter2" {
		t.Fatalf("Open = %q, %v", got, err)
	}
}

func TestOpenRejectsWrongContextKeyAndTampering(t *testing.T) {
	s := testSealer(t)
	sealed := s.Seal("hunter2", "ctx-a")
	if _, err := s.Open(sealed, "ctx-b"); err == nil {
		t.Error("opened under another context")
	}
	other, _ := New(bytes.Repeat([]byte{8}, KeySize))
	if _, err := other.Open(sealed, "ctx-a"); err == nil {
		t.Error("opened under another key")
	}
	tampered := sealed[:len(sealed)-2] + "AA"
	if _, err := s.Open(tampered, "ctx-a"); err == nil {
		t.Error("opened a tampered value")
	}
	if _, err := s.Open("plain", "ctx-a"); err != ErrNotSealed {
		t.Errorf("Open(plain) = %v, want ErrNotSealed", err)
	}
}

func TestParseKey(t *testing.T) {
	raw := bytes.Repeat([]byte{0xab}, KeySize)
	for _, in := range []string{strings.Repeat("ab", KeySize), "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=", "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s"} {
		k, err := ParseKey(in)
		if err != nil || !bytes.Equal(k, raw) {
			t.Errorf("ParseKey(%q) = %x, %v", in, k, err)
		}
	}
	if _, err := ParseKey("short"); err == nil {
		t.Error("short key accepted")
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "master.key")
	k1, created, err := LoadOrCreateKeyFile(path)
	if err != nil || !created || len(k1) != KeySize {
		t.Fatalf("create: %x %v %v", k1, created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, %v; want 0600", fi.Mode(), err)
	}
	k2, created, err := LoadOrCreateKeyFile(path)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Fatalf("reload: created=%v err=%v same=%v", created, err, bytes.Equal(k1, k2))
	}
}
