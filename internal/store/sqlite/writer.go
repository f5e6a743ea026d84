package sqlite

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
)

// Group commit.
//
// SQLite has one writer, and in WAL mode most of a small transaction's
// cost is its commit: the WAL frames of every page it touched, written
// again by the next transaction that touches the same pages (the jobs and
// executions tables' hot pages, under a job workload). So writes are not
// run one transaction each: one goroutine (the writer) takes every write
// that is waiting when it becomes free, runs each in its own SAVEPOINT of
// one transaction, and commits them together. A write whose callback fails
// is rolled back to its savepoint alone; the others commit. Nobody hears
// of a result before the commit it depends on: a failed commit fails every
// write of the batch (a write never learns "done" for a change that was
// lost).
//
// Under no contention a batch is one write and costs what it used to (no
// savepoint is taken). The batch is bounded so that one batch does not
// hold the write lock, and the readers' view of new data, for long.

// maxBatch bounds the writes committed together.
const maxBatch = 64

// errClosed answers writes sent to a closed handle.
var errClosed = errors.New("sqlite: store is closed")

// writeReq is one write waiting for the writer.
type writeReq struct {
	ctx  context.Context
	fn   func(w *wtx) error
	done chan writeResult // buffered (1): the writer never blocks on it
	res  writeResult
}

type writeResult struct {
	err error
	// panicked carries a panic of fn to its caller's goroutine, where it
	// is raised again (the server recovers from handler panics there).
	panicked bool
	panicVal any
}

// write runs fn in a write transaction, shared with other writes that
// waited at the same time, and returns once that transaction committed
// (fn's error, or the commit's). fn must not call write itself.
func (s *Store) write(ctx context.Context, fn func(w *wtx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan writeResult, 1)}
	select {
	case s.writeq <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return errClosed
	}
	// The writer answers every request it took, after the commit: waiting
	// here is bounded by one batch, so the caller's context is not watched
	// (leaving early would only hide whether the write happened).
	res := <-req.done
	if res.panicked {
		panic(res.panicVal)
	}
	return res.err
}

// startWriter starts the writer goroutine; Close stops it.
func (s *Store) startWriter() {
	s.writeq = make(chan *writeReq) // unbuffered: a request sent is a request taken
	s.writerDone = make(chan struct{})
	go func() {
		defer close(s.writerDone)
		batch := make([]*writeReq, 0, maxBatch)
		for {
			select {
			case <-s.done:
				return
			case req := <-s.writeq:
				batch = append(batch[:0], req)
			}
			// Every write already waiting joins the batch.
		more:
			for len(batch) < maxBatch {
				select {
				case req := <-s.writeq:
					batch = append(batch, req)
				default:
					break more
				}
			}
			s.runBatch(batch)
			clear(batch)
		}
	}()
}

// runBatch runs a batch of writes in one transaction and answers each.
func (s *Store) runBatch(batch []*writeReq) {
	// After the transaction ends, whatever its outcome, cached reads are
	// stale (a needless bump after a rollback costs one cache miss). The
	// bump happens before anyone is answered, so that a caller's next read
	// sees its write.
	defer func() {
		s.hub.reads.changed()
		for _, r := range batch {
			r.done <- r.res
		}
	}()
	// The transaction outlives no caller's context in particular: a
	// canceled caller must not roll back the others' writes.
	tx, err := s.wdb.BeginTx(context.Background(), nil)
	if err != nil {
		for _, r := range batch {
			r.res = writeResult{err: err}
		}
		return
	}
	savepoints := len(batch) > 1
	committed := false
	// The savepoint statements run prepared, on the transaction.
	sp := &wtx{ctx: context.Background(), tx: tx, writes: &s.writes}
	defer func() {
		if !committed {
			_ = tx.Rollback()
		}
	}()
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.res = writeResult{err: err}
			continue
		}
		if savepoints {
			if _, err := sp.exec(qSavepoint); err != nil {
				s.failBatch(batch[:i+1], fmt.Errorf("sqlite: savepoint: %w", err))
				return
			}
		}
		// Statements run under the caller's values but not its
		// cancellation: interrupting a statement can roll back the whole
		// shared transaction. fn is short; a canceled caller's write
		// completes (the store contract only needs a canceled context to
		// fail before the write starts).
		w := &wtx{ctx: context.WithoutCancel(r.ctx), tx: tx, writes: &s.writes}
		r.res = runWrite(r.fn, w)
		if r.res.err == nil && !r.res.panicked {
			if savepoints {
				if _, err := sp.exec(qRelease); err != nil {
					s.failBatch(batch[:i+1], fmt.Errorf("sqlite: release savepoint: %w", err))
					return
				}
			}
			continue
		}
		if !savepoints {
			return // the deferred rollback undoes it; nothing else to keep
		}
		// Undo this write only. Should SQLite have rolled back the whole
		// transaction already (some I/O errors do), the earlier writes are
		// lost too: they fail with the error.
		if _, err := sp.exec(qRollbackTo); err != nil {
			s.failBatch(batch[:i], fmt.Errorf("sqlite: rollback to savepoint: %w", err))
			return
		}
		if _, err := sp.exec(qRelease); err != nil {
			s.failBatch(batch[:i], fmt.Errorf("sqlite: release savepoint: %w", err))
			return
		}
	}
	committed = true
	if err := tx.Commit(); err != nil {
		s.failBatch(batch, err)
		return
	}
	s.commits.Add(1)
}

// failBatch makes every write of batch that had succeeded fail with err
// (their changes are gone with the transaction). Writes that failed on
// their own keep their own error.
func (s *Store) failBatch(batch []*writeReq, err error) {
	for _, r := range batch {
		if r.res.err == nil && !r.res.panicked {
			r.res = writeResult{err: err}
		}
	}
}

// runWrite calls fn, turning a panic into a result.
func runWrite(fn func(w *wtx) error, w *wtx) (res writeResult) {
	defer func() {
		if v := recover(); v != nil {
			res = writeResult{panicked: true, panicVal: v}
		}
	}()
	return writeResult{err: fn(w)}
}

// writerState is embedded in Store.
type writerState struct {
	writeq     chan *writeReq
	writerDone chan struct{}
	commits    atomic.Int64 // transactions the writer committed (tests)
}
