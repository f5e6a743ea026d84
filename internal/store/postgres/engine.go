package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pipelined/pipelined/internal/store"
)

// errTxDone is returned by a PipelineTx used after its InPipeline returned.
var errTxDone = errors.New("pipeline transaction used after InPipeline returned")

const (
	executionCols = `seq, id, pipeline, status, active, client_token, created, updated, doc`
	// jobCols: nonce_hash, never the nonce (the legacy nonce column holds
	// only the clear nonces of rows from before migration 00006, until
	// HashLegacyNonces hashes them).
	jobCols = `id, category, owner, provider, version, query_value, pipeline, execution_id,
		status, nonce_hash, deadline, created, updated, doc`
	qExecution = `SELECT ` + executionCols + ` FROM executions WHERE id = $1 AND pipeline = $2`
	qJob       = `SELECT ` + jobCols + ` FROM jobs WHERE id = $1`

	// claimableWhere selects the jobs ClaimJobs may take: $1-$4 the action
	// type key, $5 now. Its status IN (...) term is jobs_claim's WHERE, with
	// the same literals, so the planner proves it can use the index also
	// for a generic plan.
	claimableWhere = `WHERE category = $1 AND owner = $2 AND provider = $3 AND version = $4
			AND status IN ('` + store.JobQueued + `', '` + store.JobDispatched + `')
			AND (status = '` + store.JobQueued + `' OR deadline <= $5)`
)

// InPipeline runs fn in one transaction that first takes the pipeline's
// engine lock: the row lock on the pipeline's pipeline_runtime row, which it
// inserts (doc NULL) when missing. Every InPipeline and DeletePipeline of
// the pipeline, on any replica, takes that lock first, so they run one
// after the other; other pipelines' transactions run alongside.
//
// The transaction is READ COMMITTED: under the lock, every statement sees
// what the pipeline's previous transactions committed. fn's error comes
// back as fn returned it, and the transaction rolls back. fn is not called
// again: a serialization failure or deadlock (not expected: the lock is
// always taken first, and ClaimJobs skips locked rows rather than waiting)
// is returned as store.ErrConflict. fn must not start another InPipeline
// of the same pipeline (it would wait for itself).
func (s *Store) InPipeline(ctx context.Context, pipeline string, fn func(tx store.PipelineTx) error) error {
	var fnErr error
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		doc, err := lockPipeline(ctx, tx, pipeline)
		if err != nil {
			return err
		}
		ptx := &pipelineTx{ctx: ctx, tx: tx, pipeline: pipeline, runtime: doc}
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
		return fmt.Errorf("postgres: pipeline %q transaction: %w", pipeline, mapErr(err))
	}
	return nil
}

// lockPipeline takes the pipeline's engine lock in tx and returns its
// runtime document (nil when none). The insert makes sure there is a row to
// lock (waiting for a concurrent transaction that is inserting it); the
// select locks it. Both go in one round trip. When the row was deleted
// (by a DeletePipeline this transaction waited for), it starts over.
func lockPipeline(ctx context.Context, tx pgx.Tx, pipeline string) ([]byte, error) {
	for {
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO pipeline_runtime (pipeline) VALUES ($1) ON CONFLICT (pipeline) DO NOTHING`, pipeline)
		b.Queue(`SELECT doc FROM pipeline_runtime WHERE pipeline = $1 FOR UPDATE`, pipeline)
		br := tx.SendBatch(ctx, b)
		var doc []byte
		_, err := br.Exec()
		if err == nil {
			err = br.QueryRow().Scan(&doc)
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return doc, nil
	}
}

// pipelineTx is a store.PipelineTx on a transaction holding the pipeline's
// lock. Every query names its pipeline.
type pipelineTx struct {
	ctx      context.Context
	tx       pgx.Tx
	pipeline string
	done     bool
	// runtime is the document as this transaction last read or wrote it:
	// nobody else can change it while the lock is held.
	runtime []byte
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
	return slices.Clone(p.runtime), nil
}

func (p *pipelineTx) SetRuntime(doc []byte) error {
	if err := p.check(); err != nil {
		return err
	}
	// nil is NULL: Runtime returns nil again, as before any SetRuntime.
	if _, err := p.tx.Exec(p.ctx, `UPDATE pipeline_runtime SET doc = $2 WHERE pipeline = $1`, p.pipeline, doc); err != nil {
		return fmt.Errorf("postgres: set runtime of %q: %w", p.pipeline, mapErr(err))
	}
	p.runtime = slices.Clone(doc)
	return nil
}

func (p *pipelineTx) Execution(id string) (store.Execution, error) {
	if err := p.check(); err != nil {
		return store.Execution{}, err
	}
	e, err := scanExecution(p.tx.QueryRow(p.ctx, qExecution, id, p.pipeline))
	if err != nil {
		return store.Execution{}, fmt.Errorf("postgres: execution %q of %q: %w", id, p.pipeline, mapErr(err))
	}
	return e, nil
}

func (p *pipelineTx) ExecutionByToken(token string) (store.Execution, error) {
	if err := p.check(); err != nil {
		return store.Execution{}, err
	}
	if token == "" {
		// No execution was started with "no token".
		return store.Execution{}, fmt.Errorf("postgres: execution of %q by empty token: %w", p.pipeline, store.ErrNotFound)
	}
	e, err := scanExecution(p.tx.QueryRow(p.ctx, `SELECT `+executionCols+` FROM executions
		WHERE pipeline = $1 AND client_token = $2 AND client_token <> ''`, p.pipeline, token))
	if err != nil {
		return store.Execution{}, fmt.Errorf("postgres: execution of %q by token %q: %w", p.pipeline, token, mapErr(err))
	}
	return e, nil
}

func (p *pipelineTx) ActiveExecutions() ([]store.Execution, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	rows, err := p.tx.Query(p.ctx, `SELECT `+executionCols+` FROM executions
		WHERE pipeline = $1 AND active ORDER BY seq`, p.pipeline)
	out, err := collectExecutions(rows, err)
	if err != nil {
		return nil, fmt.Errorf("postgres: active executions of %q: %w", p.pipeline, mapErr(err))
	}
	return out, nil
}

// PutExecution inserts or updates e (by ID) in the transaction's pipeline,
// whatever e.Pipeline says. An ID taken by another pipeline's execution, or
// a ClientToken taken by another execution of this pipeline, is
// ErrAlreadyExists.
//
// Both are checked in the statement rather than left to the unique
// indexes: a failed statement aborts a PostgreSQL transaction, and fn may
// well carry on after ErrAlreadyExists (to look the token's execution up).
// The check cannot race: only transactions holding this pipeline's lock
// write its executions.
func (p *pipelineTx) PutExecution(e store.Execution) (store.Execution, error) {
	if err := p.check(); err != nil {
		return store.Execution{}, err
	}
	e.Pipeline = p.pipeline
	e.Created, e.Updated = ms(e.Created), ms(e.Updated)
	err := p.tx.QueryRow(p.ctx, `INSERT INTO executions
			(id, pipeline, status, active, client_token, created, updated, doc)
		SELECT $1::text, $2::text, $3::text, $4::boolean, $5::text, $6::timestamptz, $7::timestamptz, $8::bytea
		WHERE $5 = '' OR NOT EXISTS (SELECT FROM executions
			WHERE pipeline = $2 AND client_token = $5 AND client_token <> '' AND id <> $1)
		ON CONFLICT (id) DO UPDATE SET
			status = excluded.status, active = excluded.active, client_token = excluded.client_token,
			created = excluded.created, updated = excluded.updated, doc = excluded.doc
		WHERE executions.pipeline = excluded.pipeline
		RETURNING seq`,
		e.ID, e.Pipeline, e.Status, e.Active, e.ClientToken, e.Created, e.Updated, blob(e.Doc),
	).Scan(&e.Seq)
	switch {
	case errors.Is(err, pgx.ErrNoRows), isUniqueViolation(err):
		err = store.ErrAlreadyExists
	case err != nil:
		err = mapErr(err)
	}
	if err != nil {
		return store.Execution{}, fmt.Errorf("postgres: put execution %q of %q: %w", e.ID, p.pipeline, err)
	}
	return e, nil
}

func (p *pipelineTx) PutTimer(t store.Timer) error {
	if err := p.check(); err != nil {
		return err
	}
	tag, err := p.tx.Exec(p.ctx, `INSERT INTO timers (id, pipeline, due, payload) VALUES ($1, $2, $3, $4)
		ON CONFLICT (id) DO UPDATE SET due = excluded.due, payload = excluded.payload
		WHERE timers.pipeline = excluded.pipeline`,
		t.ID, p.pipeline, ms(t.Due), blob(t.Payload))
	err = mapErr(err)
	if err == nil && tag.RowsAffected() == 0 {
		err = store.ErrAlreadyExists // another pipeline's timer
	}
	if err != nil {
		return fmt.Errorf("postgres: put timer %q of %q: %w", t.ID, p.pipeline, err)
	}
	return nil
}

func (p *pipelineTx) DeleteTimer(id string) error {
	if err := p.check(); err != nil {
		return err
	}
	if _, err := p.tx.Exec(p.ctx, `DELETE FROM timers WHERE id = $1 AND pipeline = $2`, id, p.pipeline); err != nil {
		return fmt.Errorf("postgres: delete timer %q of %q: %w", id, p.pipeline, mapErr(err))
	}
	return nil
}

func (p *pipelineTx) PutJob(j store.Job) error {
	if err := p.check(); err != nil {
		return err
	}
	tag, err := p.tx.Exec(p.ctx, `INSERT INTO jobs (`+jobCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
		ON CONFLICT (id) DO UPDATE SET
			category = excluded.category, owner = excluded.owner, provider = excluded.provider,
			version = excluded.version, query_value = excluded.query_value,
			execution_id = excluded.execution_id, status = excluded.status, nonce_hash = excluded.nonce_hash,
			nonce = '', deadline = excluded.deadline, created = excluded.created, updated = excluded.updated,
			doc = excluded.doc
		WHERE jobs.pipeline = excluded.pipeline`,
		j.ID, j.ActionType.Category, j.ActionType.Owner, j.ActionType.Provider, j.ActionType.Version,
		j.QueryValue, p.pipeline, j.ExecutionID, j.Status, j.NonceHash,
		ms(j.Deadline), ms(j.Created), ms(j.Updated), blob(j.Doc))
	err = mapErr(err)
	if err == nil && tag.RowsAffected() == 0 {
		err = store.ErrAlreadyExists // another pipeline's job
	}
	if err != nil {
		return fmt.Errorf("postgres: put job %q of %q: %w", j.ID, p.pipeline, err)
	}
	return nil
}

// Job reads a job of the pipeline and locks its row until the transaction
// ends: a job read here cannot be dispatched by a concurrent ClaimJobs
// before the transaction's PutJob (ClaimJobs skips locked rows; a claim
// already under way finishes first, and Job then reads its result).
func (p *pipelineTx) Job(id string) (store.Job, error) {
	if err := p.check(); err != nil {
		return store.Job{}, err
	}
	j, err := scanJob(p.tx.QueryRow(p.ctx, `SELECT `+jobCols+` FROM jobs
		WHERE id = $1 AND pipeline = $2 FOR UPDATE`, id, p.pipeline))
	if err != nil {
		return store.Job{}, fmt.Errorf("postgres: job %q of %q: %w", id, p.pipeline, mapErr(err))
	}
	return j, nil
}

// Pipeline reads a version of the transaction's pipeline (0: the latest)
// through the transaction: its connection is the one the transition holds.
func (p *pipelineTx) Pipeline(version int) (store.Pipeline, error) {
	if err := p.check(); err != nil {
		return store.Pipeline{}, err
	}
	pl, err := queryPipeline(p.ctx, p.tx, p.pipeline, version)
	if err != nil {
		return store.Pipeline{}, fmt.Errorf("postgres: pipeline %q version %d: %w", p.pipeline, version, err)
	}
	return pl, nil
}

// ActionType reads an action type (deleted ones included, as
// GetActionType) through the transaction.
func (p *pipelineTx) ActionType(key store.ActionTypeKey) (store.ActionType, error) {
	if err := p.check(); err != nil {
		return store.ActionType{}, err
	}
	at, err := scanActionType(p.tx.QueryRow(p.ctx, qActionType, key.Category, key.Owner, key.Provider, key.Version))
	if err != nil {
		return store.ActionType{}, fmt.Errorf("postgres: action type %v: %w", key, mapErr(err))
	}
	return at, nil
}

// GetExecution reads an execution of a pipeline.
func (s *Store) GetExecution(ctx context.Context, pipeline, id string) (store.Execution, error) {
	e, err := scanExecution(s.pool.QueryRow(ctx, qExecution, id, pipeline))
	if err != nil {
		return store.Execution{}, fmt.Errorf("postgres: get execution %q of %q: %w", id, pipeline, mapErr(err))
	}
	return e, nil
}

// ListExecutions returns up to limit executions of a pipeline with Seq
// below beforeSeq (0: any), newest first: one backward range scan of
// executions_pipeline.
func (s *Store) ListExecutions(ctx context.Context, pipeline string, beforeSeq int64, limit int) ([]store.Execution, error) {
	if limit <= 0 {
		return nil, nil
	}
	if beforeSeq <= 0 {
		beforeSeq = math.MaxInt64
	}
	rows, err := s.pool.Query(ctx, `SELECT `+executionCols+` FROM executions
		WHERE pipeline = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3`, pipeline, beforeSeq, limit)
	out, err := collectExecutions(rows, err)
	if err != nil {
		return nil, fmt.Errorf("postgres: list executions of %q: %w", pipeline, mapErr(err))
	}
	return out, nil
}

// DueTimers returns up to limit timers due at or before now, earliest
// first (ties by ID).
func (s *Store) DueTimers(ctx context.Context, now time.Time, limit int) ([]store.Timer, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT id, pipeline, due, payload FROM timers
		WHERE due <= $1 ORDER BY due, id LIMIT $2`, now, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: due timers: %w", mapErr(err))
	}
	var (
		out []store.Timer
		t   store.Timer
	)
	_, err = pgx.ForEachRow(rows, []any{&t.ID, &t.Pipeline, &t.Due, &t.Payload}, func() error {
		t.Due = utc(t.Due)
		out = append(out, t)
		t.Payload = nil // the next row scans into a new slice
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: due timers: %w", mapErr(err))
	}
	return out, nil
}

// ClaimJobs dispatches up to max claimable jobs of an action type, oldest
// first, in one transaction: SELECT ... FOR UPDATE SKIP LOCKED takes the
// rows (concurrent claimers, on any replica, pass over the rows another one
// holds instead of waiting; a row another claimer dispatched and committed
// meanwhile fails the re-check of the WHERE and is dropped), then one
// UPDATE gives each its nonce hash. A claimer may get fewer than max jobs while
// others claim; the rest are there for the next call.
//
// A dispatched job's Deadline is compared with this process's clock, the
// clock the engine set it by (not the database's); Updated becomes now.
func (s *Store) ClaimJobs(ctx context.Context, key store.ActionTypeKey, queryValue *string, max int, newNonce func(jobID string) (nonce, hash string), ackDeadline time.Time) ([]store.Job, error) {
	if max <= 0 {
		return nil, nil
	}
	var jobs []store.Job
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		t := ms(time.Now())
		var (
			rows pgx.Rows
			err  error
		)
		if queryValue == nil {
			rows, err = tx.Query(ctx, `SELECT id FROM jobs `+claimableWhere+`
				ORDER BY created, id LIMIT $6 FOR UPDATE SKIP LOCKED`,
				key.Category, key.Owner, key.Provider, key.Version, t, max)
		} else {
			rows, err = tx.Query(ctx, `SELECT id FROM jobs `+claimableWhere+` AND query_value = $7
				ORDER BY created, id LIMIT $6 FOR UPDATE SKIP LOCKED`,
				key.Category, key.Owner, key.Provider, key.Version, t, max, *queryValue)
		}
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(ids) == 0 {
			return err
		}
		clear := make([]string, len(ids))
		hashes := make([]string, len(ids))
		for i, id := range ids {
			clear[i], hashes[i] = newNonce(id)
		}
		rows, err = tx.Query(ctx, `UPDATE jobs j
			SET status = '`+store.JobDispatched+`', nonce_hash = u.claimed_hash, nonce = '', deadline = $3, updated = $4
			FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u (claimed_id, claimed_hash, ord)
			WHERE j.id = u.claimed_id
			RETURNING u.ord, `+jobCols,
			ids, hashes, ms(ackDeadline), t)
		if err != nil {
			return err
		}
		type claimed struct {
			ord int64
			job store.Job
		}
		got, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (claimed, error) {
			var c claimed
			j := &c.job
			err := row.Scan(&c.ord, &j.ID, &j.ActionType.Category, &j.ActionType.Owner, &j.ActionType.Provider,
				&j.ActionType.Version, &j.QueryValue, &j.Pipeline, &j.ExecutionID, &j.Status, &j.NonceHash,
				&j.Deadline, &j.Created, &j.Updated, &j.Doc)
			j.Deadline, j.Created, j.Updated = utc(j.Deadline), utc(j.Created), utc(j.Updated)
			return c, err
		})
		if err != nil {
			return err
		}
		// RETURNING gives no order guarantee: back to the select's.
		slices.SortFunc(got, func(a, b claimed) int { return cmp.Compare(a.ord, b.ord) })
		jobs = make([]store.Job, len(got))
		for i, c := range got {
			jobs[i] = c.job
			jobs[i].Nonce = clear[c.ord-1] // ord counts from 1
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: claim jobs of %s: %w", store.ActionTypeResource(key), mapErr(err))
	}
	return jobs, nil
}

// legacyNonceBatch is how many legacy nonces one transaction of
// HashLegacyNonces replaces.
const legacyNonceBatch = 100

// HashLegacyNonces replaces the clear nonces rows from before migration
// 00006 hold, a batch per transaction. Replicas starting together skip
// each other's locked rows; each update is conditional on the row still
// holding the nonce that was hashed.
func (s *Store) HashLegacyNonces(ctx context.Context, hash func(j store.Job, nonce string) string) (int, error) {
	total := 0
	for {
		replaced, last := 0, false
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			replaced, last = 0, false
			rows, err := tx.Query(ctx, `SELECT nonce, `+jobCols+` FROM jobs WHERE nonce <> ''
				ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`, legacyNonceBatch)
			if err != nil {
				return err
			}
			type legacy struct {
				job   store.Job
				nonce string
			}
			found, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (legacy, error) {
				var l legacy
				j := &l.job
				err := row.Scan(&l.nonce, &j.ID, &j.ActionType.Category, &j.ActionType.Owner, &j.ActionType.Provider,
					&j.ActionType.Version, &j.QueryValue, &j.Pipeline, &j.ExecutionID, &j.Status, &j.NonceHash,
					&j.Deadline, &j.Created, &j.Updated, &j.Doc)
				j.Deadline, j.Created, j.Updated = utc(j.Deadline), utc(j.Created), utc(j.Updated)
				return l, err
			})
			if err != nil {
				return err
			}
			for _, l := range found {
				tag, err := tx.Exec(ctx, `UPDATE jobs SET nonce_hash = $1, nonce = '' WHERE id = $2 AND nonce = $3`,
					hash(l.job, l.nonce), l.job.ID, l.nonce)
				if err != nil {
					return err
				}
				replaced += int(tag.RowsAffected())
			}
			last = len(found) < legacyNonceBatch
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("postgres: hash legacy job nonces: %w", mapErr(err))
		}
		total += replaced
		if last {
			return total, nil
		}
	}
}

// GetJob reads a job by ID.
func (s *Store) GetJob(ctx context.Context, id string) (store.Job, error) {
	j, err := scanJob(s.pool.QueryRow(ctx, qJob, id))
	if err != nil {
		return store.Job{}, fmt.Errorf("postgres: get job %q: %w", id, mapErr(err))
	}
	return j, nil
}

// deleteEngineState deletes a pipeline's runtime, executions, timers and
// jobs (DeletePipeline's part), in one round trip. The caller holds the
// pipeline's lock (lockPipeline).
func deleteEngineState(ctx context.Context, tx pgx.Tx, pipeline string) error {
	b := &pgx.Batch{}
	for _, table := range []string{"pipeline_runtime", "executions", "timers", "jobs"} {
		b.Queue(`DELETE FROM `+table+` WHERE pipeline = $1`, pipeline)
	}
	return tx.SendBatch(ctx, b).Close()
}

// scanExecution reads one row of executionCols.
func scanExecution(row pgx.Row) (store.Execution, error) {
	var e store.Execution
	if err := row.Scan(&e.Seq, &e.ID, &e.Pipeline, &e.Status, &e.Active, &e.ClientToken,
		&e.Created, &e.Updated, &e.Doc); err != nil {
		return store.Execution{}, err
	}
	e.Created, e.Updated = utc(e.Created), utc(e.Updated)
	return e, nil
}

// collectExecutions reads rows of executionCols (err: the query's error).
func collectExecutions(rows pgx.Rows, err error) ([]store.Execution, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Execution, error) {
		return scanExecution(row)
	})
}

// scanJob reads one row of jobCols.
func scanJob(row pgx.Row) (store.Job, error) {
	var j store.Job
	if err := row.Scan(&j.ID, &j.ActionType.Category, &j.ActionType.Owner, &j.ActionType.Provider,
		&j.ActionType.Version, &j.QueryValue, &j.Pipeline, &j.ExecutionID, &j.Status, &j.NonceHash,
		&j.Deadline, &j.Created, &j.Updated, &j.Doc); err != nil {
		return store.Job{}, err
	}
	j.Deadline, j.Created, j.Updated = utc(j.Deadline), utc(j.Created), utc(j.Updated)
	return j, nil
}

// ms returns t as the store keeps engine timestamps: UTC, whole
// milliseconds (the SQLite backend's precision, so both return the same).
func ms(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }
