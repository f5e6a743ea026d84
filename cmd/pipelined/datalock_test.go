package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
)

// refusedStart runs `pipelined serve` expecting it to refuse to start, and
// returns what it printed.
func refusedStart(t *testing.T, database, dataDir string) string {
	t.Helper()
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(),
		"PIPELINED_LISTEN="+freeAddr(t), "PIPELINED_DATA_DIR="+dataDir, "PIPELINED_DATABASE="+database,
		"PIPELINED_ROOT_ACCESS_KEY_ID="+rootKey, "PIPELINED_ROOT_SECRET_ACCESS_KEY="+rootSecret,
		"PIPELINED_MASTER_KEY="+masterKey, "PIPELINED_LOG_LEVEL=warn",
	)
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("a second server on a locked SQLite data dir did not exit; output:\n%s", out)
	}
	if err == nil {
		t.Fatalf("a second server on a locked SQLite data dir exited 0; output:\n%s", out)
	}
	return string(out)
}

// TestOneProcessPerSQLiteDataDir: a second `pipelined serve` on a data dir
// (or SQLite database) another process serves refuses to start, naming the
// lock file and the holder's pid; once the holder dies, even by SIGKILL, the
// next start succeeds and serves the same data.
func TestOneProcessPerSQLiteDataDir(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := startReplica(t, "", dir)
	if _, err := a.client().CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: pipelineNamed("locked", "v1")}); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(a.cmd.Process.Pid)

	out := refusedStart(t, "", dir)
	for _, want := range []string{filepath.Join(dir, "pipelined.lock"), "pid " + pid, "--data-dir"} {
		if !strings.Contains(out, want) {
			t.Errorf("the refusal does not mention %q:\n%s", want, out)
		}
	}
	// Another data dir naming the first one's database is refused too: the
	// database is what each process caches.
	out = refusedStart(t, filepath.Join(dir, "pipelined.db"), t.TempDir())
	for _, want := range []string{filepath.Join(dir, "pipelined.db.lock"), "pid " + pid} {
		if !strings.Contains(out, want) {
			t.Errorf("the refusal of a shared --database does not mention %q:\n%s", want, out)
		}
	}
	// The refused starts changed nothing: the holder still serves.
	if _, err := a.client().GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String("locked")}); err != nil {
		t.Fatalf("the holder stopped serving after refused starts: %v", err)
	}

	// SIGKILL leaves no stale lock.
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.done
	b := startReplica(t, "", dir)
	got, err := b.client().ListPipelines(ctx, &codepipeline.ListPipelinesInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Pipelines) != 1 || aws.ToString(got.Pipelines[0].Name) != "locked" {
		t.Errorf("after the restart the pipelines are %+v, want the one created before the kill", got.Pipelines)
	}
	if held, err := os.ReadFile(filepath.Join(dir, "pipelined.lock")); err != nil || strings.TrimSpace(string(held)) != strconv.Itoa(b.cmd.Process.Pid) {
		t.Errorf("the lock file holds %q (%v), want the new holder's pid %d", held, err, b.cmd.Process.Pid)
	}
}
