package runner

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/commandspec"
	"github.com/pipelined/pipelined/internal/wire"
)

// testJob is a job with a work directory and a primary input directory,
// run by the real bash.
func testJob(t *testing.T, spec *commandspec.Spec, grace time.Duration) (*job, []srcDir) {
	t.Helper()
	r := New(nil, Options{KillGrace: grace, Logger: slog.New(slog.DiscardHandler)})
	j := &job{r: r, id: "job-1", nonce: "nonce-secret-123", spec: spec, dir: t.TempDir(), log: r.log,
		data: &wire.JobData{PipelineContext: &wire.PipelineContext{PipelineName: "p", PipelineExecutionId: "x"}}}
	for _, d := range []string{"src", "ctl", "home", "tmp", "src/code"} {
		if err := os.Mkdir(filepath.Join(j.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return j, []srcDir{{name: "Code", path: filepath.Join(j.dir, "src", "code")}}
}

func TestScriptOneSessionAndExitTrap(t *testing.T) {
	for _, tc := range []struct {
		name     string
		commands []string
		ok       bool
		vars     map[string]string
		message  string
	}{
		{"cd and export carry over", []string{"mkdir sub", "cd sub", "export A=1", `B="$(pwd | sed 's|.*/||')-$A"`}, true, map[string]string{"A": "1", "B": "sub-1"}, ""},
		{"exit 0 mid-script still exports", []string{"A=early", "exit 0", "A=never"}, true, map[string]string{"A": "early"}, ""},
		{"first failure stops", []string{"A=1", "(exit 7)", "A=2"}, false, nil, "Command 2 of 3 failed with exit code 7: (exit 7)"},
		{"exit N in a command", []string{"exit 3"}, false, nil, "Command 1 of 1 failed with exit code 3: exit 3"},
		{"trailing backslash", []string{`echo a \`, "A=set"}, true, map[string]string{"A": "set"}, ""},
		{"quotes in commands", []string{`A="it's \"quoted\""`}, true, map[string]string{"A": `it's "quoted"`}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, dirs := testJob(t, &commandspec.Spec{Commands: tc.commands, OutputVariables: []string{"A", "B"}}, time.Second)
			out := newOutput(&shipper{j: j}, nil, 1<<20)
			res := j.execute(context.Background(), out, dirs)
			out.close()
			if res.ok != tc.ok {
				t.Fatalf("ok %v, want %v: %s\noutput:\n%s", res.ok, tc.ok, res.message, out.tail())
			}
			if tc.ok {
				for k, v := range tc.vars {
					if res.vars[k] != v {
						t.Errorf("%s = %q, want %q (all %v)", k, res.vars[k], v, res.vars)
					}
				}
			} else if !strings.Contains(res.message, tc.message) {
				t.Errorf("message %q, want %q", res.message, tc.message)
			}
		})
	}
}

// A cancelled job: SIGTERM to the group, SIGKILL after the grace for what
// ignores it, and nothing of the group left, including a child that kept
// the output pipe open.
func TestCancelKillsTheWholeGroup(t *testing.T) {
	j, dirs := testJob(t, &commandspec.Spec{Commands: []string{
		"sleep 300 &",
		`bash -c 'trap "" TERM; echo ignoring; sleep 300' &`,
		"sleep 300",
	}}, 500*time.Millisecond)
	var pgid int
	started := make(chan struct{})
	j.r.o.OnStart = func(_ string, p int) { pgid = p; close(started) }
	ctx, cancel := context.WithCancelCause(context.Background())
	out := newOutput(&shipper{j: j}, nil, 1<<20)
	done := make(chan outcome)
	go func() { done <- j.execute(ctx, out, dirs) }()
	<-started
	time.Sleep(300 * time.Millisecond) // let the children start
	cancel(errStopped)
	select {
	case res := <-done:
		if res.ok || !strings.Contains(res.message, "stopped") {
			t.Errorf("result %+v", res)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the cancelled job did not end")
	}
	deadline := time.Now().Add(5 * time.Second)
	for !errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH) {
		if time.Now().After(deadline) {
			t.Fatalf("process group %d still has members", pgid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestEnvironmentIsClean(t *testing.T) {
	t.Setenv("AWS_SECRET_ACCESS_KEY", "runner-secret-must-not-leak")
	t.Setenv("PIPELINED_MASTER_KEY", "runner-master-must-not-leak")
	j, dirs := testJob(t, &commandspec.Spec{Commands: []string{"env > env.txt"},
		EnvironmentVariables: []commandspec.EnvVar{{Name: "MINE", Value: "v"}}}, time.Second)
	j.r.o.PublicURL = "http://pipelined.test"
	out := newOutput(&shipper{j: j}, nil, 1<<20)
	if res := j.execute(context.Background(), out, dirs); !res.ok {
		t.Fatal(res.message)
	}
	env, err := os.ReadFile(filepath.Join(dirs[0].path, "env.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"runner-secret-must-not-leak", "runner-master-must-not-leak"} {
		if bytes.Contains(env, []byte(bad)) {
			t.Errorf("the runner's environment leaked into the job: %s", bad)
		}
	}
	for _, want := range []string{"MINE=v", "CODEBUILD_SRC_DIR=" + dirs[0].path, "CODEBUILD_SRC_DIR_Code=", "HOME=" + filepath.Join(j.dir, "home"),
		"PIPELINED_ID_TOKEN_REQUEST_URL=http://pipelined.test/", "PIPELINED_ID_TOKEN_REQUEST_TOKEN=job-1:nonce-secret-123", "PIPELINED_PIPELINE_NAME=p"} {
		if !bytes.Contains(env, []byte(want)) {
			t.Errorf("the job's environment lacks %s", want)
		}
	}
}

func zipOf(t *testing.T, entries func(zw *zip.Writer)) string {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	entries(zw)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "a.zip")
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUnpackRefusesUnsafeEntries(t *testing.T) {
	file := func(name, body string) func(zw *zip.Writer) {
		return func(zw *zip.Writer) { w, _ := zw.Create(name); _, _ = w.Write([]byte(body)) }
	}
	for _, tc := range []struct {
		name    string
		entries func(zw *zip.Writer)
		budget  unpackBudget
		want    string
	}{
		{"zip slip", file("../../etc/evil", "x"), unpackBudget{1 << 20, 10}, "reaches outside"},
		{"absolute", file("/etc/evil", "x"), unpackBudget{1 << 20, 10}, "unsafe name"},
		{"symlink", func(zw *zip.Writer) {
			h := &zip.FileHeader{Name: "link"}
			h.SetMode(os.ModeSymlink | 0o777)
			w, _ := zw.CreateHeader(h)
			_, _ = w.Write([]byte("/etc/passwd"))
		}, unpackBudget{1 << 20, 10}, "symbolic link"},
		{"bytes over budget", file("big", strings.Repeat("a", 2000)), unpackBudget{1000, 10}, "more bytes"},
		{"files over budget", func(zw *zip.Writer) {
			for _, n := range []string{"a", "b", "c"} {
				w, _ := zw.Create(n)
				_, _ = w.Write([]byte("x"))
			}
		}, unpackBudget{1 << 20, 2}, "more files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b := tc.budget
			err := unpack(zipOf(t, tc.entries), dir, &b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	dir := t.TempDir()
	b := unpackBudget{1 << 20, 10}
	if err := unpack(zipOf(t, file("a/b/c.txt", "ok")), dir, &b); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "a/b/c.txt")); string(got) != "ok" {
		t.Errorf("unpacked %q", got)
	}
}

func TestGlobs(t *testing.T) {
	for _, tc := range []struct {
		glob string
		in   []string
		out  []string
	}{
		{"**/*", []string{"a", "d/e/f"}, nil},
		{"dist/**/*", []string{"dist/a", "dist/b/c"}, []string{"a", "distx/a"}},
		{"dist/", []string{"dist/a", "dist/b/c"}, []string{"a"}},
		{"*.txt", []string{"a.txt"}, []string{"d/a.txt", "a.md"}},
		{"**/*.txt", []string{"a.txt", "d/e/a.txt"}, []string{"a.md"}},
		{"src/**/*.go", []string{"src/a.go", "src/x/y/a.go"}, []string{"a.go"}},
	} {
		g, err := commandspec.CompileGlob(tc.glob)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range tc.in {
			if !g.Match(p) {
				t.Errorf("%s does not match %s", tc.glob, p)
			}
		}
		for _, p := range tc.out {
			if g.Match(p) {
				t.Errorf("%s matches %s", tc.glob, p)
			}
		}
	}
}
