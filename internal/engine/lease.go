package engine

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"time"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/wire"
)

// Runner leases. A job of a leased action type (the Commands action, run
// by pipelined's runners) holds a lease from its acknowledgement on: its
// runner renews it with Heartbeat, and a lease that runs out (the runner
// was killed, or lost its network) fails the action with RunnerLost, long
// before the job's own timeout. The lease is a timer row like the job
// timeout, so it survives restarts and is fired by whichever replica
// sweeps.

// leaseTimer names the lease timer of an attempt.
const leaseTimer = "runner-lease"

// RunnerLost is the error code of an action whose runner stopped
// heartbeating.
const RunnerLost = "RunnerLost"

// SetJobLease makes the acknowledged jobs of action type k hold a lease of
// ttl, renewed by Heartbeat. Call it before the engine runs.
func (e *Engine) SetJobLease(k actiontypes.Key, ttl time.Duration) {
	if e.leases == nil {
		e.leases = map[actiontypes.Key]time.Duration{}
	}
	e.leases[k] = ttl
}

// JobLease is the lease of action type k (0: its jobs hold none).
func (e *Engine) JobLease(k actiontypes.Key) time.Duration { return e.leases[k] }

// setLease sets or moves the lease timer of an in-progress job.
func (t *txn) setLease(jobID, executionID, actionExec string, ttl time.Duration) error {
	data, err := json.Marshal(jobTimerData{JobID: jobID, Lease: true})
	if err != nil {
		return err
	}
	return t.setAttemptTimer(jobExecutor{}.Name(), executionID, actionExec, leaseTimer, t.now.Add(ttl), data)
}

// Heartbeat renews the lease of a job for the runner that holds its nonce,
// and tells it whether to stop: true when the job is no longer in progress
// (the action was stopped, abandoned, superseded or timed out, or its
// result is in). A wrong nonce is InvalidNonceException.
func (e *Engine) Heartbeat(ctx context.Context, pipeline, jobID, nonce string) (stop bool, err error) {
	err = e.transact(ctx, pipeline, func(t *txn) error {
		j, doc, err := t.loadJob(jobID)
		if err != nil {
			return err
		}
		if j.Nonce == "" || subtle.ConstantTimeCompare([]byte(j.Nonce), []byte(nonce)) != 1 {
			return wire.Errorf(wire.ErrInvalidNonce, "The nonce is not the current nonce of job %s", jobID)
		}
		if j.Status != JobInProgress {
			stop = true
			return nil
		}
		if ttl := e.leases[actiontypes.Key(j.ActionType)]; ttl > 0 {
			return t.setLease(j.ID, j.ExecutionID, doc.ActionExec, ttl)
		}
		return nil
	})
	return stop, err
}

func runnerLostMessage(jobID string, ttl time.Duration) string {
	return fmt.Sprintf("The runner of job %s stopped sending heartbeats for %s (it was killed, or lost its connection to pipelined); retry the stage to run the action again", jobID, ttl)
}
