package builtin

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/smithy-go"

	"github.com/pipelined/pipelined/internal/engine"
	"github.com/pipelined/pipelined/internal/wire"
)

func zipBytes(t *testing.T, entries ...[2]string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for _, e := range entries {
		w, err := zw.Create(e[0])
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(e[1]))
	}
	zw.Close()
	return b.Bytes()
}

func spooledBytes(b []byte) *spooled {
	r := bytes.NewReader(b)
	return &spooled{ReadSeeker: r, ReaderAt: r, size: int64(len(b))}
}

func TestPlanExtractLimits(t *testing.T) {
	r := &Runner{o: Options{MaxExtractFiles: 2, MaxExtractBytes: 100}}
	ok := zipBytes(t, [2]string{"a/", ""}, [2]string{"a/b.txt", "b"}, [2]string{"c.txt", "c"})
	files, err := r.planExtract(spooledBytes(ok), int64(len(ok)))
	if err != nil || len(files) != 2 || files[0].name != "a/b.txt" {
		t.Fatalf("plan: %v %v", files, err)
	}
	many := zipBytes(t, [2]string{"1", ""}, [2]string{"2", ""}, [2]string{"3", ""})
	if _, err := r.planExtract(spooledBytes(many), int64(len(many))); err == nil || !strings.Contains(err.Error(), "more than 2 files") {
		t.Errorf("too many files: %v", err)
	}
	// A bomb: highly compressible, far larger uncompressed than the limit.
	big := zipBytes(t, [2]string{"zeros", strings.Repeat("\x00", 1000)})
	if _, err := r.planExtract(spooledBytes(big), int64(len(big))); err == nil || !strings.Contains(err.Error(), "more than 100 bytes") {
		t.Errorf("too large: %v", err)
	}
	sum := zipBytes(t, [2]string{"x", strings.Repeat("x", 60)}, [2]string{"y", strings.Repeat("y", 60)})
	if _, err := r.planExtract(spooledBytes(sum), int64(len(sum))); err == nil || !strings.Contains(err.Error(), "more than 100 bytes") {
		t.Errorf("too large in total: %v", err)
	}
}

func TestCleanEntryName(t *testing.T) {
	for in, want := range map[string]string{"a.txt": "a.txt", "dir/./b.txt": "dir/b.txt", `win\path.txt`: "win/path.txt", "a//b": "a/b"} {
		if got, err := cleanEntryName(in); err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"../x", "a/../../x", `..\x`, "/etc/passwd", `\x`, "C:/x", "a/..", "\xff", "."} {
		if got, err := cleanEntryName(bad); err == nil {
			t.Errorf("%q accepted as %q", bad, got)
		}
	}
}

func TestContentType(t *testing.T) {
	for key, want := range map[string]string{"a/index.HTML": "text/html; charset=utf-8", "x.js": "text/javascript; charset=utf-8",
		"x.svg": "image/svg+xml", "x.woff2": "font/woff2", "LICENSE": "application/octet-stream", "x.unknownext": "application/octet-stream"} {
		if got := contentType(key); got != want {
			t.Errorf("%s: %s, want %s", key, got, want)
		}
	}
}

func TestS3Failure(t *testing.T) {
	res := s3Failure(&smithy.GenericAPIError{Code: "AccessDenied", Message: "Access Denied"}, "read the source object", "b", "k")
	if res.failType != wire.FailureTypePermissionError || res.message != "Could not read the source object s3://b/k: access denied (AccessDenied: Access Denied)" {
		t.Errorf("access denied: %+v", res)
	}
	res = s3Failure(errors.New("dial tcp: connection refused"), "deploy to", "b", "k")
	if res.failType != wire.FailureTypeJobFailed || !strings.Contains(res.message, "connection refused") {
		t.Errorf("network: %+v", res)
	}
	res = s3Failure(context.DeadlineExceeded, "deploy to", "b", "")
	if !strings.Contains(res.message, "s3://b:") {
		t.Errorf("no key: %+v", res)
	}
}

func TestLastSeen(t *testing.T) {
	src := func(rev string) []engine.StageRun {
		return []engine.StageRun{{Name: "Source", Actions: []engine.ActionRun{{Name: "Fetch", Revision: rev}}}}
	}
	done := func(rev string) *engine.Execution {
		return &engine.Execution{Status: engine.StatusSucceeded, Type: engine.TypeStandard, Stages: src(rev)}
	}
	cases := []struct {
		name    string
		xs      []*engine.Execution
		rev     string
		pending bool
	}{
		{"none", nil, "", false},
		{"newest", []*engine.Execution{done("r2"), done("r1")}, "r2", false},
		{"running without a revision", []*engine.Execution{{Status: engine.StatusInProgress, Stages: src("")}, done("r1")}, "", true},
		{"failed without a revision", []*engine.Execution{{Status: engine.StatusFailed, Stages: src("")}, done("r1")}, "r1", false},
		{"failed poll start", []*engine.Execution{{Status: engine.StatusFailed, Stages: src(""), TriggerType: "PollForSourceChanges",
			TriggerDetail: triggerDetail(polledSource{action: "Fetch", bucket: "b", key: "k@x", revision: "r3"})}, done("r1")}, "r3", false},
		{"override", []*engine.Execution{{Status: engine.StatusSucceeded, Stages: src("old"), SourceOverrides: map[string]string{"Fetch": "old"}}, done("r1")}, "r1", false},
		{"rollback", []*engine.Execution{{Status: engine.StatusInProgress, Type: engine.TypeRollback}, done("r1")}, "r1", false},
	}
	for _, c := range cases {
		rev, pending := lastSeen(c.xs, "Fetch")
		if rev != c.rev || pending != c.pending {
			t.Errorf("%s: %q %v, want %q %v", c.name, rev, pending, c.rev, c.pending)
		}
	}
}
