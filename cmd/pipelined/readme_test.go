package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// firstUseMarker precedes the README's first-use shell block.
const firstUseMarker = "<!-- first-use: the next sh block is run by TestReadmeFirstUse -->"

// TestReadmeFirstUse runs the README's first-use sequence with bash, as a
// new user pastes it, in a fresh copy of the repository: it builds and
// starts `pipelined serve`, creates buckets, uploads a site, creates the
// example pipeline, approves it and reads the deployed page, all with the
// aws CLI. The only change made to the text is the port (a free one
// instead of 8480, which another server on this machine may hold).
func TestReadmeFirstUse(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the server and runs the aws CLI; skipped with -short")
	}
	for _, tool := range [][]string{{"bash", "--version"}, {"aws", "--version"}, {"python3", "--version"}, {"curl", "--version"}, {"git", "--version"}} {
		if err := exec.Command(tool[0], tool[1:]...).Run(); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is required in CI: %v", tool[0], err)
			}
			t.Skipf("%s is not available (%v): the README first-use test needs bash, the aws CLI, python3, curl and git", tool[0], err)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), firstUseMarker)
	m := regexp.MustCompile("(?s)\\A\\s*```sh\n(.*?)```").FindStringSubmatch(after)
	if !ok || m == nil {
		t.Fatalf("README.md has no ```sh block after %q", firstUseMarker)
	}
	script := m[1]
	if !strings.Contains(script, "127.0.0.1:8480") {
		t.Fatal("the first-use block no longer uses 127.0.0.1:8480; update this test")
	}
	addr := freeAddr(t)
	script = strings.ReplaceAll(script, "127.0.0.1:8480", addr)

	checkout := freshCopy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", script)
	cmd.Dir = checkout
	// The server must listen on the substituted port too: PIPELINED_LISTEN
	// moves it there without touching the README's `./pipelined serve`.
	// No AWS_* or PIPELINED_* setting of the machine reaches the script, and
	// no aws CLI config file.
	cmd.Env = append(cleanEnv(), "PIPELINED_LISTEN="+addr, "AWS_CONFIG_FILE=/dev/null")
	// The server runs in the background of the script: kill the whole
	// process group the test started, whatever happens.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }()
	err = cmd.Wait()
	log, _ := os.ReadFile(filepath.Join(checkout, "pipelined.log"))
	if err != nil {
		t.Fatalf("the README's first-use sequence failed: %v\noutput:\n%s\nserver log:\n%s", err, out.String(), tail(string(log), 30))
	}
	got := out.String()
	for _, want := range []string{`"Arn": "arn:aws:iam::000000000000:root"`, "make_bucket: sources", "make_bucket: website",
		"execution: Succeeded", "index.html", "<h1>Hello from pipelined</h1>"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s\nserver log:\n%s", want, got, tail(string(log), 30))
		}
	}
	// The data dir the README names is the one the server used, and git
	// ignores it (it holds the root credentials and the master key).
	if _, err := os.Stat(filepath.Join(checkout, "pipelined-data", "credentials")); err != nil {
		t.Errorf("pipelined-data/credentials: %v", err)
	}
	for _, name := range []string{"pipelined-data/credentials", "pipelined-data/master.key", "pipelined.log"} {
		ign := exec.Command("git", "check-ignore", "-q", name)
		ign.Dir = checkout
		if err := ign.Run(); err != nil {
			t.Errorf(".gitignore does not cover %s: %v", name, err)
		}
	}
}

// freshCopy copies the repository's files (tracked, and new files git does
// not ignore: the working tree as a commit of it would hold) into a new git
// repository, as a fresh checkout.
func freshCopy(t *testing.T) string {
	t.Helper()
	rootOut, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("not in a git checkout: %v", err)
	}
	root := strings.TrimSpace(string(rootOut))
	list, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	for _, name := range strings.Split(strings.TrimRight(string(list), "\x00"), "\x00") {
		src := filepath.Join(root, name)
		fi, err := os.Lstat(src)
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the working tree, or not a file
		}
		if err := copyFile(src, filepath.Join(dst, name), fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	init := exec.Command("git", "init", "-q")
	init.Dir = dst
	if out, err := init.CombinedOutput(); err != nil {
		t.Fatalf("git init: %v %s", err, out)
	}
	return dst
}

func copyFile(src, dst string, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
