package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/pipelined/pipelined/internal/commandspec"
	"github.com/pipelined/pipelined/internal/identity"
	"github.com/pipelined/pipelined/internal/wire"
)

// maxOutputVariablesSize is CodePipeline's limit on an action's output
// variables, keys and values together.
const maxOutputVariablesSize = 122880

// maxFailureMessage bounds a failure message (the job protocol's limit).
const maxFailureMessage = 5000

// job is one job being run.
type job struct {
	r     *Runner
	id    string
	nonce string
	data  *wire.JobData
	spec  *commandspec.Spec
	log   *slog.Logger
	dir   string // the job's temporary directory
	// stopped is the reason the job was cancelled ("" while it was not).
	cancel context.CancelCauseFunc
	// started and exited time the script's process (debug log).
	started, exited time.Time
}

// outcome is a job's result before it is reported.
type outcome struct {
	ok      bool
	vars    map[string]string
	summary string
	fail    wire.FailureType
	message string
}

func failed(t wire.FailureType, format string, args ...any) outcome {
	return outcome{fail: t, message: fmt.Sprintf(format, args...)}
}

// Causes of a job's cancellation.
var (
	errStopped = errors.New("the action was stopped in pipelined (stop, abandon or supersede)")
	errTimeout = errors.New("timeout")
)

// runJob acknowledges a polled job, runs it and reports the result.
func (r *Runner) runJob(parent context.Context, wj wire.Job) {
	log := r.log.With("job", wj.Id)
	t0 := time.Now()
	ack, err := r.srv.AcknowledgeJob(context.WithoutCancel(parent), &wire.AcknowledgeJobInput{JobId: wj.Id, Nonce: wj.Nonce})
	if err != nil {
		log.Warn("acknowledge job", "err", err)
		return
	}
	if ack.Status != wire.JobStatusInProgress {
		return // stopped meanwhile
	}
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	j := &job{r: r, id: wj.Id, nonce: wj.Nonce, data: wj.Data, log: log, cancel: cancel}
	if pc := wj.Data.PipelineContext; pc != nil {
		j.log = log.With("pipeline", pc.PipelineName, "execution", pc.PipelineExecutionId)
	}
	// Heartbeats run from the acknowledgement to the report.
	hbCtx, stopHeartbeats := context.WithCancel(context.WithoutCancel(parent))
	hbDone := make(chan struct{})
	go func() { defer close(hbDone); j.heartbeat(hbCtx) }()
	tAck := time.Now()
	res := j.safeRun(ctx)
	defer func() {
		if j.dir != "" {
			removeAll(j.log, j.dir)
		}
	}()
	tRun := time.Now()
	defer func() {
		j.log.Debug("job phases", "ack", tAck.Sub(t0), "prepare", j.started.Sub(tAck), "process", j.exited.Sub(j.started),
			"finish", tRun.Sub(j.exited), "report", time.Since(tRun))
	}()
	switch cause := context.Cause(ctx); {
	case res.ok || cause == nil:
	case errors.Is(cause, errStopped):
		j.log.Info("job cancelled: the action was stopped")
		stopHeartbeats()
		<-hbDone
		return // nobody takes a result any more
	case parent.Err() != nil:
		res = failed(wire.FailureTypeSystemUnavailable, "The runner shut down while the action ran (it was cancelled); retry the stage. %s", res.message)
	}
	j.report(res)
	stopHeartbeats()
	<-hbDone
}

func (j *job) safeRun(ctx context.Context) (res outcome) {
	defer func() {
		if p := recover(); p != nil {
			j.log.Error("runner panicked", "panic", p, "stack", string(debug.Stack()))
			res = failed(wire.FailureTypeJobFailed, "The runner failed internally while running the action")
		}
	}()
	dir, err := os.MkdirTemp(j.r.o.WorkDir, "pipelined-job-")
	if err != nil {
		return failed(wire.FailureTypeJobFailed, "The runner could not create the job's work directory: %v", err)
	}
	j.dir = dir // removed by runJob once the result is reported
	return j.run(ctx)
}

// heartbeat renews the job's lease until ctx ends, and cancels the job
// when the server says it was stopped.
func (j *job) heartbeat(ctx context.Context) {
	t := time.NewTicker(j.r.o.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hctx, cancel := context.WithTimeout(ctx, j.r.o.HeartbeatInterval)
		stop, err := j.r.srv.Heartbeat(hctx, j.id, j.nonce)
		cancel()
		switch {
		case err != nil && isFinal(err):
			j.log.Warn("heartbeat refused; cancelling the job", "err", err)
			j.cancel(errStopped)
			return
		case err != nil:
			if ctx.Err() == nil {
				j.log.Warn("heartbeat", "err", err)
			}
		case stop:
			j.cancel(errStopped)
			return
		}
	}
}

// run prepares the work directory, runs the script and gathers the
// results.
func (j *job) run(ctx context.Context) outcome {
	cfg := map[string]string{}
	if j.data.ActionConfiguration != nil {
		cfg = j.data.ActionConfiguration.Configuration
	}
	spec, err := commandspec.Decode(cfg)
	if err != nil {
		return failed(wire.FailureTypeJobFailed, "The runner cannot read the job: %v", err)
	}
	j.spec = spec
	timeout := j.timeout()
	ctx, cancelTimeout := context.WithTimeoutCause(ctx, timeout, errTimeout)
	defer cancelTimeout()

	ship := newShipper(j, j.r.o.Logs)
	defer ship.close()
	for _, d := range []string{"src", "ctl", "home", "tmp"} {
		if err := os.Mkdir(filepath.Join(j.dir, d), 0o700); err != nil {
			return failed(wire.FailureTypeJobFailed, "The runner could not prepare the work directory: %v", err)
		}
	}
	creds := j.data.ArtifactCredentials
	secrets := []string{identity.RequestToken(j.id, j.nonce)}
	if creds != nil {
		secrets = append(secrets, creds.SecretAccessKey, creds.SessionToken)
	}
	out := newOutput(ship, secrets, j.r.o.MaxOutputBytes)

	srcDirs, err := j.fetchInputs(ctx)
	if err != nil {
		out.note("pipelined: " + err.Error())
		out.close()
		return j.failure(ctx, out, wire.FailureTypeJobFailed, err.Error())
	}
	res := j.execute(ctx, out, srcDirs)
	out.close()
	if !res.ok {
		return j.failure(ctx, out, res.fail, res.message)
	}
	if len(j.data.OutputArtifacts) > 0 {
		if err := j.uploadOutput(context.WithoutCancel(ctx), srcDirs[0].path); err != nil {
			return failed(wire.FailureTypeJobFailed, "%v", err)
		}
	}
	return res
}

// timeout is how long the job may run: its own timeout (counted from the
// acknowledgement, a few seconds ago), less a margin to report in, capped
// by MaxJobTimeout.
func (j *job) timeout() time.Duration {
	t := time.Duration(commandspec.MaxTimeoutMinutes) * time.Minute
	if j.spec != nil && j.spec.TimeoutSeconds > 0 {
		t = time.Duration(j.spec.TimeoutSeconds) * time.Second
	}
	// The engine's timer fails the job at its timeout; the runner stops it
	// a little earlier, so that its own message (with the output's last
	// lines) is the one reported.
	t -= min(t/10, 15*time.Second)
	if j.r.o.MaxJobTimeout > 0 {
		t = min(t, j.r.o.MaxJobTimeout)
	}
	return t
}

// failure adds the reason a cancelled job ended to its failure.
func (j *job) failure(ctx context.Context, out *output, t wire.FailureType, msg string) outcome {
	if errors.Is(context.Cause(ctx), errTimeout) {
		msg = fmt.Sprintf("The commands did not finish within %s and were stopped. %s", j.timeout(), msg)
	}
	if tail := out.tail(); tail != "" {
		msg += "\nLast lines of output:\n" + tail
	}
	return failed(t, "%s", msg)
}

// report sends the result, retrying while the server cannot be reached.
func (j *job) report(res outcome) {
	delay := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var err error
		if res.ok {
			err = j.r.srv.PutJobSuccessResult(ctx, &wire.PutJobSuccessResultInput{
				JobId: j.id, OutputVariables: res.vars,
				ExecutionDetails: &wire.ExecutionDetails{Summary: res.summary},
			})
		} else {
			err = j.r.srv.PutJobFailureResult(ctx, &wire.PutJobFailureResultInput{
				JobId: j.id, FailureDetails: &wire.FailureDetails{Type: res.fail, Message: truncate(res.message, maxFailureMessage)},
			})
		}
		cancel()
		if err == nil {
			j.log.Info("job reported", "success", res.ok)
			return
		}
		if isFinal(err) || attempt == 8 {
			j.log.Warn("report job result", "err", err)
			return
		}
		j.log.Warn("report job result; retrying", "attempt", attempt, "err", err)
		time.Sleep(delay)
		delay = min(delay*2, 10*time.Second)
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Keep the end: the last lines of output say most.
	return "…" + s[len(s)-n+len("…"):]
}

// removeAll removes a job's directory, also where the commands took away
// write permission.
func removeAll(log *slog.Logger, dir string) {
	if err := os.RemoveAll(dir); err == nil {
		return
	}
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	if err := os.RemoveAll(dir); err != nil {
		log.Warn("remove the job's work directory", "dir", dir, "err", err)
	}
}

// shellQuote quotes s for bash.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
