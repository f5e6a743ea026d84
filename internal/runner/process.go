package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pipelined/pipelined/internal/commandspec"
	"github.com/pipelined/pipelined/internal/identity"
	"github.com/pipelined/pipelined/internal/wire"
)

// srcDir is an unpacked input artifact.
type srcDir struct {
	name string
	path string
}

// passedEnv are the runner's own variables a job's environment keeps
// (nothing else of the runner's environment reaches a job: not its
// credentials, not its configuration).
var passedEnv = []string{"PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "USER", "LOGNAME", "SHELL"}

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// environment is the job's environment: the allowlist, the job's places
// and context, its ID token request variables, and the action's
// environment variables.
func (j *job) environment(srcDirs []srcDir) []string {
	env := []string{}
	for _, k := range passedEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		} else if k == "PATH" {
			env = append(env, "PATH="+defaultPath)
		}
	}
	env = append(env,
		"HOME="+filepath.Join(j.dir, "home"),
		"TMPDIR="+filepath.Join(j.dir, "tmp"),
		"CI=true",
		"CODEBUILD_SRC_DIR="+srcDirs[0].path,
		"PIPELINED_JOB_ID="+j.id,
	)
	for _, s := range srcDirs {
		env = append(env, "CODEBUILD_SRC_DIR_"+envSafe(s.name)+"="+s.path)
	}
	if pc := j.data.PipelineContext; pc != nil {
		env = append(env,
			"PIPELINED_PIPELINE_NAME="+pc.PipelineName,
			"PIPELINED_EXECUTION_ID="+pc.PipelineExecutionId,
		)
		if pc.Stage != nil {
			env = append(env, "PIPELINED_STAGE_NAME="+pc.Stage.Name)
		}
		if pc.Action != nil {
			env = append(env, "PIPELINED_ACTION_NAME="+pc.Action.Name, "PIPELINED_ACTION_EXECUTION_ID="+pc.Action.ActionExecutionId)
		}
	}
	if j.r.o.PublicURL != "" {
		env = append(env, identity.JobEnvironment(j.r.o.PublicURL, j.id, j.nonce)...)
	}
	for _, ev := range j.spec.EnvironmentVariables {
		env = append(env, ev.Name+"="+ev.Value)
	}
	return env
}

// envSafe makes an artifact name usable in a variable name.
func envSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// script is the bash script of the job's commands: one shell session, so
// that cd and export carry over; the first command that fails ends it with
// its exit code. An EXIT trap records which command ran last, with what
// status, and the final values of the output variables, also when a
// command calls exit.
func (j *job) script() string {
	ctl := filepath.Join(j.dir, "ctl")
	var b strings.Builder
	b.WriteString("# The commands of a Compute/AWS/Commands/1 action, run by pipelined.\n")
	b.WriteString("__pipelined_cmd=0\n")
	names := make([]string, 0, len(j.spec.OutputVariables))
	for _, n := range j.spec.OutputVariables {
		if commandspec.ValidVarName(n) {
			names = append(names, n)
		}
	}
	fmt.Fprintf(&b, "trap '__pipelined_rc=$?; { printf \"%%s %%s\" \"$__pipelined_cmd\" \"$__pipelined_rc\" > %s; for __pipelined_n in %s; do if [ -n \"${!__pipelined_n+x}\" ]; then printf \"%%s=%%s\\0\" \"$__pipelined_n\" \"${!__pipelined_n}\"; fi; done > %s; } 2>/dev/null' EXIT\n",
		escapeInTrap(shellQuote(filepath.Join(ctl, "status"))), strings.Join(names, " "), escapeInTrap(shellQuote(filepath.Join(ctl, "vars"))))
	for i, c := range j.spec.Commands {
		fmt.Fprintf(&b, "__pipelined_cmd=%d\nprintf '%%s\\n' %s\n", i+1, shellQuote("[pipelined] Running command "+c))
		// The blank line after the command ends a trailing backslash's
		// line continuation.
		b.WriteString(c + "\n\n")
		b.WriteString("__pipelined_rc=$?; if [ \"$__pipelined_rc\" -ne 0 ]; then exit \"$__pipelined_rc\"; fi\n")
	}
	b.WriteString("__pipelined_cmd=0\nexit 0\n")
	return b.String()
}

// escapeInTrap makes a single-quoted word usable inside the single-quoted
// trap command.
func escapeInTrap(quoted string) string {
	return strings.ReplaceAll(quoted, "'", `'\''`)
}

// execute runs the script and reads its results.
func (j *job) execute(ctx context.Context, out *output, srcDirs []srcDir) outcome {
	ctl := filepath.Join(j.dir, "ctl")
	scriptPath := filepath.Join(ctl, "script.sh")
	if err := os.WriteFile(scriptPath, []byte(j.script()), 0o600); err != nil {
		return failed(wire.FailureTypeJobFailed, "The runner could not write the job's script: %v", err)
	}
	cmd := exec.Command(j.r.o.Shell, "--noprofile", "--norc", scriptPath)
	cmd.Dir = srcDirs[0].path
	cmd.Env = j.environment(srcDirs)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A backgrounded child may keep the output pipe open after the script
	// ends; Wait must not wait for it past the grace.
	cmd.WaitDelay = j.r.o.KillGrace + time.Second
	pr, pw, err := os.Pipe()
	if err != nil {
		return failed(wire.FailureTypeJobFailed, "The runner could not create the output pipe: %v", err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return failed(wire.FailureTypeJobFailed, "The runner could not start %s: %v", j.r.o.Shell, err)
	}
	pw.Close()
	j.started = time.Now()
	defer func() { j.exited = time.Now() }()
	pgid := cmd.Process.Pid
	if j.r.o.OnStart != nil {
		j.r.o.OnStart(j.id, pgid)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		buf := make([]byte, 32<<10)
		_, _ = io.CopyBuffer(out, pr, buf)
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var waitErr error
	select {
	case waitErr = <-waited:
	case <-ctx.Done():
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		t := time.NewTimer(j.r.o.KillGrace)
		select {
		case waitErr = <-waited:
			t.Stop()
		case <-t.C:
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			waitErr = <-waited
		}
	}
	// No process of the job outlives it: what the script left running in
	// its group goes too.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-copied:
	case <-time.After(2 * time.Second):
		// A process that left the group (setsid) still holds the pipe.
		out.note("pipelined: a process that left the job's process group still held its output; output after this point is not shown")
	}
	pr.Close()

	if ctx.Err() != nil {
		return failed(wire.FailureTypeJobFailed, "The commands were stopped: %v", causeText(ctx))
	}
	status, _ := os.ReadFile(filepath.Join(ctl, "status"))
	cmdNo, code := parseStatus(status)
	if waitErr == nil && code == 0 {
		vars, msg := j.outputVariables(filepath.Join(ctl, "vars"))
		if msg != "" {
			return failed(wire.FailureTypeJobFailed, "%s", msg)
		}
		return outcome{ok: true, vars: vars, summary: fmt.Sprintf("Ran %d commands", len(j.spec.Commands))}
	}
	exit := cmd.ProcessState.ExitCode()
	if code == 0 && exit > 0 {
		code = exit
	}
	switch {
	case exit < 0:
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return failed(wire.FailureTypeJobFailed, "The commands' shell was killed by signal %s", ws.Signal())
		}
		return failed(wire.FailureTypeJobFailed, "The commands' shell failed: %v", waitErr)
	case cmdNo >= 1 && cmdNo <= len(j.spec.Commands):
		return failed(wire.FailureTypeJobFailed, "Command %d of %d failed with exit code %d: %s", cmdNo, len(j.spec.Commands), code, j.spec.Commands[cmdNo-1])
	default:
		return failed(wire.FailureTypeJobFailed, "The commands' shell exited with code %d", code)
	}
}

func causeText(ctx context.Context) string {
	c := context.Cause(ctx)
	if errors.Is(c, errTimeout) {
		return "the action's timeout was reached"
	}
	if errors.Is(c, context.Canceled) {
		return "the runner shut down"
	}
	return c.Error()
}

// parseStatus reads the EXIT trap's "<command number> <status>".
func parseStatus(b []byte) (cmdNo, code int) {
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0
	}
	cmdNo, _ = strconv.Atoi(f[0])
	code, _ = strconv.Atoi(f[1])
	return cmdNo, code
}

// outputVariables reads the variables the EXIT trap recorded: those of
// outputVariables that were set; a message when they are too big.
func (j *job) outputVariables(path string) (map[string]string, string) {
	if len(j.spec.OutputVariables) == 0 {
		return nil, ""
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Sprintf("The runner could not read the output variables (did a command replace the EXIT trap?): %v", err)
	}
	vars := map[string]string{}
	size := 0
	for _, rec := range bytes.Split(b, []byte{0}) {
		name, value, ok := strings.Cut(string(rec), "=")
		if !ok {
			continue
		}
		vars[name] = value
		size += len(name) + len(value)
	}
	if size > maxOutputVariablesSize {
		return nil, fmt.Sprintf("The output variables take %d bytes; the limit is %d", size, maxOutputVariablesSize)
	}
	return vars, ""
}
