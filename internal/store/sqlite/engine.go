package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/pipelined/pipelined/internal/store"
)

// errTxDone is returned by a PipelineTx used after its InPipeline returned.
var errTxDone = errors.New("pipeline transaction used after InPipeline returned")

// InPipeline runs fn in one write transaction. SQLite has one writer at a
// time (BEGIN IMMEDIATE, across handles and processes too), so the write
// transaction is every pipeline's engine lock at once: transitions of one
// pipeline never interleave, and those of different pipelines queue
// behind each other (each is short). fn runs while the write lock is held:
// it must not call this Store's write methods (they would wait for the
// only write connection, which fn's transaction holds, until ctx ends).
// It reads through tx (Pipeline, ActionType, ...), which uses the
// transaction's connection. fn's error comes back as fn returned it, and
// nothing fn wrote is kept (also when fn panics).
func (s *Store) InPipeline(ctx context.Context, pipeline string, fn func(tx store.PipelineTx) error) error {
	var fnErr error
	err := s.write(ctx, func(w *wtx) error {
		ptx := &pipelineTx{w: w, pipeline: pipeline}
		defer func() { ptx.done = true }()
		if err := fn(ptx); err != nil {
			fnErr = err
			return err
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("sqlite: pipeline %q transaction: %w", pipeline, err)
	}
	return nil
}

// pipelineTx is a store.PipelineTx on a write transaction. Every query
// names its pipeline.
type pipelineTx struct {
	w        *wtx
	pipeline string
	done     bool

	// The runtime document, read at most once per transaction.
	runtime     []byte
	runtimeRead bool
}

func (p *pipelineTx) check() error {
	if p.done {
		return errTxDone
	}
	return nil
}

func (p *pipelineTx) Runtime() ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	if !p.runtimeRead {
		var (
			null bool
			doc  []byte
		)
		err := p.w.queryRow(qRuntime, p.pipeline).Scan(&null, &doc)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("sqlite: runtime of %q: %w", p.pipeline, err)
		}
		if err == nil && !null && doc == nil {
			doc = []byte{}
		}
		p.runtime, p.runtimeRead = doc, true
	}
	return cloneBytes(p.runtime), nil
}

func (p *pipelineTx) SetRuntime(doc []byte) error {
	if err := p.check(); err != nil {
		return err
	}
	// NULL for nil: Runtime returns nil again, as before any SetRuntime.
	var arg any
	if doc != nil {
		arg = doc
	}
	if _, err := p.w.exec(qRuntimePut, p.pipeline, arg); err != nil {
		return fmt.Errorf("sqlite: set runtime of %q: %w", p.pipeline, err)
	}
	p.runtime, p.runtimeRead = cloneBytes(doc), true
	return nil
}

func (p *pipelineTx) Execution(id string) (store.Execution, error) {
	if err := p.check(); err != nil {
		return store.Execution{}, err
	}
	e, err := scanExecution(p.w.queryRow(qExecution, id, p.pipeline))
	if err != nil {
		return store.Execution{}, fmt.Errorf("sqlite: execution %q of %q: %w", id, p.pipeline, notFound(err))
	}
	return e, nil
}

func (p *pipelineTx) ExecutionByToken(token string) (store.Execution, error) {
	if err := p.check(); err != nil {
		return store.Execution{}, err
	}
	if token == "" {
		// No execution was started with "no token".
		return store.Execution{}, fmt.Errorf("sqlite: execution of %q by empty token: %w", p.pipeline, store.ErrNotFound)
	}
	e, err := scanExecution(p.w.queryRow(qExecutionByToken, p.pipeline, token))
	if err != nil {
		return store.Execution{}, fmt.Errorf("sqlite: execution of %q by token %q: %w", p.pipeline, token, notFound(err))
	}
	return e, nil
}

func (p *pipelineTx) ActiveExecutions() ([]store.Execution, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	rows, err := p.w.query(qExecutionsActive, p.pipeline)
	if err != nil {
		return nil, fmt.Errorf("sqlite: active executions of %q: %w", p.pipeline, err)
	}
	out, err := collectExecutions(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: active executions of %q: %w", p.pipeline, err)
	}
	return out, nil
}

// PutExecution inserts or updates e (by ID) in the transaction's pipeline,
// whatever e.Pipeline says. An ID taken by another pipeline's execution, or
// a ClientToken taken by another execution of this pipeline, is
// ErrAlreadyExists. A failed statement does not end an SQLite transaction,
// so fn may carry on after it (look the token up, say).
func (p *pipelineTx) PutExecution(e store.Execution) (store.Execution, error) {
	if err := p.check(); err != nil {
		return store.Execution{}, err
	}
	e.Pipeline = p.pipeline
	e.Created, e.Updated = ms(e.Created), ms(e.Updated)
	err := p.w.queryRow(qExecutionPut, e.ID, e.Pipeline, e.Status, e.Active, e.ClientToken,
		toMillis(e.Created), toMillis(e.Updated), blob(e.Doc)).Scan(&e.Seq)
	switch {
	case isUniqueViolation(err), errors.Is(err, sql.ErrNoRows):
		err = store.ErrAlreadyExists
	}
	if err != nil {
		return store.Execution{}, fmt.Errorf("sqlite: put execution %q of %q: %w", e.ID, p.pipeline, err)
	}
	return e, nil
}

func (p *pipelineTx) PutTimer(t store.Timer) error {
	if err := p.check(); err != nil {
		return err
	}
	res, err := p.w.exec(qTimerPut, t.ID, p.pipeline, toMillis(t.Due), blob(t.Payload))
	if err == nil {
		var n int64
		if n, err = rowsAffected(res); err == nil && n == 0 {
			err = store.ErrAlreadyExists // another pipeline's timer
		}
	}
	if err != nil {
		return fmt.Errorf("sqlite: put timer %q of %q: %w", t.ID, p.pipeline, err)
	}
	return nil
}

func (p *pipelineTx) DeleteTimer(id string) error {
	if err := p.check(); err != nil {
		return err
	}
	if _, err := p.w.exec(qTimerDelete, id, p.pipeline); err != nil {
		return fmt.Errorf("sqlite: delete timer %q of %q: %w", id, p.pipeline, err)
	}
	return nil
}

func (p *pipelineTx) PutJob(j store.Job) error {
	if err := p.check(); err != nil {
		return err
	}
	res, err := p.w.exec(qJobPut, j.ID, j.ActionType.Category, j.ActionType.Owner, j.ActionType.Provider,
		j.ActionType.Version, j.QueryValue, p.pipeline, j.ExecutionID, j.Status, j.NonceHash,
		toMillis(j.Deadline), toMillis(j.Created), toMillis(j.Updated), blob(j.Doc))
	if err == nil {
		var n int64
		if n, err = rowsAffected(res); err == nil && n == 0 {
			err = store.ErrAlreadyExists // another pipeline's job
		}
	}
	if err != nil {
		return fmt.Errorf("sqlite: put job %q of %q: %w", j.ID, p.pipeline, err)
	}
	return nil
}

func (p *pipelineTx) Job(id string) (store.Job, error) {
	if err := p.check(); err != nil {
		return store.Job{}, err
	}
	j, err := scanJob(p.w.queryRow(qJobInPipeline, id, p.pipeline))
	if err != nil {
		return store.Job{}, fmt.Errorf("sqlite: job %q of %q: %w", id, p.pipeline, notFound(err))
	}
	return j, nil
}

// Pipeline reads a version of the transaction's pipeline (0: the latest)
// on the transaction's connection, not the read pool's cache: the cache is
// not the transaction's view.
func (p *pipelineTx) Pipeline(version int) (store.Pipeline, error) {
	if err := p.check(); err != nil {
		return store.Pipeline{}, err
	}
	var row *sql.Row
	switch {
	case version == 0:
		row = p.w.queryRow(qPipelineLatest, p.pipeline)
	case version > 0:
		row = p.w.queryRow(qPipelineVersion, p.pipeline, version)
	default:
		return store.Pipeline{}, fmt.Errorf("sqlite: pipeline %q version %d: %w", p.pipeline, version, store.ErrNotFound)
	}
	pl, err := scanPipeline(row)
	if err != nil {
		return store.Pipeline{}, fmt.Errorf("sqlite: pipeline %q version %d: %w", p.pipeline, version, notFound(err))
	}
	return pl, nil
}

// ActionType reads an action type (deleted ones included, as
// GetActionType) on the transaction's connection.
func (p *pipelineTx) ActionType(key store.ActionTypeKey) (store.ActionType, error) {
	if err := p.check(); err != nil {
		return store.ActionType{}, err
	}
	at, err := scanActionType(p.w.queryRow(qActionType, key.Category, key.Owner, key.Provider, key.Version))
	if err != nil {
		return store.ActionType{}, fmt.Errorf("sqlite: action type %v: %w", key, notFound(err))
	}
	return at, nil
}

// GetExecution reads an execution of a pipeline, on the read pool.
func (s *Store) GetExecution(ctx context.Context, pipeline, id string) (store.Execution, error) {
	e, err := scanExecution(s.queryRow(ctx, qExecution, id, pipeline))
	if err != nil {
		return store.Execution{}, fmt.Errorf("sqlite: get execution %q of %q: %w", id, pipeline, notFound(err))
	}
	return e, nil
}

// ListExecutions returns up to limit executions of a pipeline with Seq
// below beforeSeq (0: any), newest first: one range scan of
// executions_pipeline.
func (s *Store) ListExecutions(ctx context.Context, pipeline string, beforeSeq int64, limit int) ([]store.Execution, error) {
	if limit <= 0 {
		return nil, nil
	}
	if beforeSeq <= 0 {
		beforeSeq = math.MaxInt64
	}
	rows, err := s.query(ctx, qExecutionsList, pipeline, beforeSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list executions of %q: %w", pipeline, err)
	}
	out, err := collectExecutions(rows)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list executions of %q: %w", pipeline, err)
	}
	return out, nil
}

// DueTimers returns up to limit timers due at or before now, earliest
// first (ties by ID).
func (s *Store) DueTimers(ctx context.Context, now time.Time, limit int) ([]store.Timer, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.query(ctx, qTimersDue, toMillis(now), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: due timers: %w", err)
	}
	defer rows.Close()
	var out []store.Timer
	for rows.Next() {
		var (
			t   store.Timer
			due int64
		)
		if err := rows.Scan(&t.ID, &t.Pipeline, &due, &t.Payload); err != nil {
			return nil, fmt.Errorf("sqlite: due timers: %w", err)
		}
		t.Due = fromMillis(due)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: due timers: %w", err)
	}
	return out, nil
}

// ClaimJobs dispatches up to max claimable jobs of an action type, oldest
// first, in one write transaction: SQLite runs one at a time (across
// handles and processes too), so no two claimers get the same job. One
// statement selects them on the jobs_claim index, one dispatches them all,
// each with its nonce hash (newNonce is called for each selected job). A
// dispatched job's Deadline is compared with this process's clock, the
// clock the engine set it by; Updated becomes now.
func (s *Store) ClaimJobs(ctx context.Context, key store.ActionTypeKey, queryValue *string, max int, newNonce func(jobID string) (nonce, hash string), ackDeadline time.Time) ([]store.Job, error) {
	if max <= 0 {
		return nil, nil
	}
	// Most claims of a waiting long poll find nothing; look on the read
	// pool first, so that they do not queue for the single write lock.
	if found, err := s.anyClaimable(ctx, key, queryValue); err != nil || !found {
		return nil, err
	}
	var jobs []store.Job
	err := s.write(ctx, func(w *wtx) error {
		t := now()
		var (
			rows *sql.Rows
			err  error
		)
		if queryValue == nil {
			rows, err = w.query(qJobsClaimable, key.Category, key.Owner, key.Provider, key.Version, toMillis(t), max)
		} else {
			rows, err = w.query(qJobsClaimableQuery, key.Category, key.Owner, key.Provider, key.Version, toMillis(t), *queryValue, max)
		}
		if err != nil {
			return err
		}
		var (
			rowids []int64
			jobIDs []string
		)
		for rows.Next() {
			var (
				rowid int64
				id    string
			)
			if err := rows.Scan(&rowid, &id); err != nil {
				rows.Close()
				return err
			}
			rowids = append(rowids, rowid)
			jobIDs = append(jobIDs, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(rowids) == 0 {
			return nil
		}
		order := make(map[int64]int, len(rowids))
		hashes := make(map[string]string, len(rowids))
		clear := make([]string, len(rowids))
		for i, id := range rowids {
			order[id] = i
			var hash string
			clear[i], hash = newNonce(jobIDs[i])
			hashes[strconv.FormatInt(id, 10)] = hash
		}
		arg, err := json.Marshal(hashes)
		if err != nil {
			return err
		}
		rows, err = w.query(qJobsDispatch, toMillis(ackDeadline), toMillis(t), string(arg))
		if err != nil {
			return err
		}
		defer rows.Close()
		// RETURNING gives no order guarantee: back to the select's.
		jobs = make([]store.Job, len(rowids))
		n := 0
		for rows.Next() {
			var rowid int64
			j, err := scanJob(rows, &rowid)
			if err != nil {
				return err
			}
			j.Nonce = clear[order[rowid]]
			jobs[order[rowid]] = j
			n++
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if n != len(rowids) {
			return fmt.Errorf("dispatched %d of %d jobs", n, len(rowids)) // cannot happen
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: claim jobs of %s: %w", store.ActionTypeResource(key), err)
	}
	return jobs, nil
}

// legacyNonceBatch is how many legacy nonces one write transaction of
// HashLegacyNonces replaces.
const legacyNonceBatch = 100

// HashLegacyNonces replaces the clear nonces rows from before migration
// 00006 hold, a batch per write transaction. Each update is conditional on
// the row still holding the nonce that was hashed.
func (s *Store) HashLegacyNonces(ctx context.Context, hash func(j store.Job, nonce string) string) (int, error) {
	total := 0
	for {
		replaced, last := 0, false
		err := s.write(ctx, func(w *wtx) error {
			replaced, last = 0, false
			rows, err := w.query(qJobsLegacyNonces, legacyNonceBatch)
			if err != nil {
				return err
			}
			type legacy struct {
				job   store.Job
				nonce string
			}
			var found []legacy
			for rows.Next() {
				var l legacy
				if l.job, err = scanJob(rows, &l.nonce); err != nil {
					rows.Close()
					return err
				}
				found = append(found, l)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for _, l := range found {
				res, err := w.exec(qJobLegacyNonceHash, hash(l.job, l.nonce), l.job.ID, l.nonce)
				if err != nil {
					return err
				}
				n, err := rowsAffected(res)
				if err != nil {
					return err
				}
				replaced += int(n)
			}
			last = len(found) < legacyNonceBatch
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("sqlite: hash legacy job nonces: %w", err)
		}
		total += replaced
		if last {
			return total, nil
		}
	}
}

// GetJob reads a job by ID, on the read pool.
func (s *Store) GetJob(ctx context.Context, id string) (store.Job, error) {
	j, err := scanJob(s.queryRow(ctx, qJob, id))
	if err != nil {
		return store.Job{}, fmt.Errorf("sqlite: get job %q: %w", id, notFound(err))
	}
	return j, nil
}

// deleteEngineState deletes a pipeline's runtime, executions, timers and
// jobs (DeletePipeline's part).
func deleteEngineState(w *wtx, pipeline string) error {
	for _, q := range []string{qRuntimeDelete, qExecutionsDelete, qTimersDelete, qJobsDelete} {
		if _, err := w.exec(q, pipeline); err != nil {
			return err
		}
	}
	return nil
}

// scanExecution reads one row of executionCols.
func scanExecution(row scanner) (store.Execution, error) {
	var (
		e                store.Execution
		created, updated int64
	)
	if err := row.Scan(&e.Seq, &e.ID, &e.Pipeline, &e.Status, &e.Active, &e.ClientToken, &created, &updated, &e.Doc); err != nil {
		return store.Execution{}, err
	}
	e.Created, e.Updated = fromMillis(created), fromMillis(updated)
	return e, nil
}

func collectExecutions(rows *sql.Rows) ([]store.Execution, error) {
	defer rows.Close()
	var out []store.Execution
	for rows.Next() {
		e, err := scanExecution(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// scanJob reads one row of jobCols, after the columns of pre if any.
func scanJob(row scanner, pre ...any) (store.Job, error) {
	var (
		j                          store.Job
		deadline, created, updated int64
	)
	if err := row.Scan(append(pre, &j.ID, &j.ActionType.Category, &j.ActionType.Owner, &j.ActionType.Provider,
		&j.ActionType.Version, &j.QueryValue, &j.Pipeline, &j.ExecutionID, &j.Status, &j.NonceHash,
		&deadline, &created, &updated, &j.Doc)...); err != nil {
		return store.Job{}, err
	}
	j.Deadline, j.Created, j.Updated = fromMillis(deadline), fromMillis(created), fromMillis(updated)
	return j, nil
}

// ms returns t as the store keeps it: UTC, whole milliseconds.
func ms(t time.Time) time.Time { return fromMillis(toMillis(t)) }

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// anyClaimable reports, from the read pool, whether a claim could find a
// job. A job committed just after the look is found by the next claim.
func (s *Store) anyClaimable(ctx context.Context, key store.ActionTypeKey, queryValue *string) (bool, error) {
	t := toMillis(now())
	var (
		rows *sql.Rows
		err  error
	)
	if queryValue == nil {
		rows, err = s.query(ctx, qJobsClaimable, key.Category, key.Owner, key.Provider, key.Version, t, 1)
	} else {
		rows, err = s.query(ctx, qJobsClaimableQuery, key.Category, key.Owner, key.Provider, key.Version, t, *queryValue, 1)
	}
	if err != nil {
		return false, fmt.Errorf("sqlite: claim jobs: %w", err)
	}
	defer rows.Close()
	found := rows.Next()
	return found, rows.Err()
}
