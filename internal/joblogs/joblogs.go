// Package joblogs keeps the output of running jobs: runners send it in
// pieces (PUT /runner/v1/jobs/{jobId}/log?offset=N, or Service.Append for
// the embedded runner), the server stores it in chunks while the job runs,
// compacts it when the job ends, and keeps it for the retention period.
// The CloudWatch Logs API (internal/logsapi) reads it back as log events.
//
// Idempotent appends. The runner numbers bytes, not requests: a piece
// carries the offset of its first byte. The server appends only at
// offset == stored length; bytes it already has (a resend after a lost
// answer, an overlap) are skipped; a piece that starts past the stored
// length (a gap) is refused with the stored length, from which the runner
// resends. So a resent or reordered piece never duplicates or loses a byte.
// (Gitea's UpdateLog/AckIndex and WriteLogs work the same way.)
//
// Events. Lines become log events; a line longer than MaxEventBytes is cut
// into several. An event's timestamp is when the server received the bytes
// that complete it: one clock (the server's, kept monotonic per log) rather
// than the runners', whose clocks may be off, and the runner sends at least
// every second, so the time is within about a second of the output. A
// line without its newline yet is held back (in the stream's tail) until
// the newline arrives or the job ends.
//
// Storage. While the job runs every append that completes events adds one
// chunk row (job id, seq, byte offset) in the store; the head row keeps the
// length and the incomplete tail. When the job has ended (its result was
// reported, it timed out or was stopped) the log is finished (the tail
// becomes the last event) and compacted: runs of chunks become gzip blocks
// of about 1 MiB, each with a small index of the times, still in the
// database. Keeping the compacted log in the database rather than as one
// object in the artifact store keeps reads seekable (a page of events
// inflates one block, not the whole log), needs no artifact-store
// credentials on the read path, and is removed by the same transaction as
// its head row when it expires.
//
// The service never logs log contents: they may hold whatever the job
// printed (runners redact secrets before sending, and the server cannot
// know what else is sensitive).
package joblogs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/pipelined/pipelined/internal/engine"
	"github.com/pipelined/pipelined/internal/identity"
	"github.com/pipelined/pipelined/internal/store"
)

// MaxAppendBytes bounds one append (the body of one PUT).
const MaxAppendBytes = 1 << 20

// Errors of Append.
var (
	// ErrNoJob: there is no job with that id.
	ErrNoJob = errors.New("joblogs: no such job")
	// ErrJobNotRunning: the job is not in progress (not acknowledged yet,
	// or ended), or its log was already finished.
	ErrJobNotRunning = errors.New("joblogs: the job is not in progress")
	// ErrTooLarge: more than MaxAppendBytes in one append.
	ErrTooLarge = fmt.Errorf("joblogs: more than %d bytes in one append", MaxAppendBytes)
	// ErrBadOffset: a negative offset.
	ErrBadOffset = errors.New("joblogs: offset must be 0 or more")
)

// GapError answers an append whose offset is past the stored length: the
// runner resends from Acked.
type GapError struct {
	Offset, Acked int64
}

func (e *GapError) Error() string {
	return fmt.Sprintf("joblogs: offset %d is past the stored length %d; resend from %d", e.Offset, e.Acked, e.Acked)
}

// Store is what the service uses.
type Store interface {
	store.Logs
	GetJob(ctx context.Context, id string) (store.Job, error)
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	ReleaseLease(ctx context.Context, name, holder string) error
}

// Config configures a Service.
type Config struct {
	Store    Store
	Identity *identity.Service // authenticates the HTTP appends
	// Retention is how long a finished log is kept (0: forever).
	Retention time.Duration
	// SweepInterval is how often the sweeper looks for ended jobs' logs
	// and expired logs (default 5s).
	SweepInterval time.Duration
	Logger        *slog.Logger
	Now           func() time.Time
}

// Service stores and reads job logs.
type Service struct {
	cfg Config
	log *slog.Logger
}

// New returns a Service.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{cfg: cfg, log: cfg.Logger}
}

// Append stores data as the bytes of the job's log from offset on, and
// returns how many bytes of the log are stored (acked): the offset the
// next append starts at. Bytes before acked that the log already has are
// skipped; an offset past the stored length is a *GapError. The job must
// be in progress. This is the embedded runner's entry; remote runners
// reach it through the HTTP handler.
func (s *Service) Append(ctx context.Context, jobID string, offset int64, data []byte) (int64, error) {
	if err := checkAppend(offset, data); err != nil {
		return 0, err
	}
	j, err := s.cfg.Store.GetJob(ctx, jobID)
	if errors.Is(err, store.ErrNotFound) {
		return 0, ErrNoJob
	}
	if err != nil {
		return 0, err
	}
	if j.Status != engine.JobInProgress {
		return 0, ErrJobNotRunning
	}
	return s.appendJob(ctx, j, offset, data)
}

func checkAppend(offset int64, data []byte) error {
	if offset < 0 {
		return ErrBadOffset
	}
	if len(data) > MaxAppendBytes {
		return ErrTooLarge
	}
	return nil
}

// StreamName is the name of the log stream of a job: its action
// execution id, as ListActionExecutions shows it.
func StreamName(doc *engine.JobDoc) string { return doc.ActionExec }

func (s *Service) appendJob(ctx context.Context, j store.Job, offset int64, data []byte) (int64, error) {
	doc, err := engine.DecodeJob(j)
	if err != nil {
		return 0, err
	}
	now := s.cfg.Now().UTC().Truncate(time.Millisecond)
	ls, err := s.cfg.Store.AppendLog(ctx, j.ID, func(cur *store.LogStream) (*store.LogStream, *store.LogChunk, error) {
		if cur == nil {
			if len(data) == 0 && offset == 0 {
				return nil, nil, nil // nothing to store: answered as acked 0 below
			}
			cur = &store.LogStream{Pipeline: j.Pipeline, Name: StreamName(doc), Created: now}
		}
		if !cur.Finished.IsZero() {
			return nil, nil, ErrJobNotRunning
		}
		if offset > cur.Length {
			return nil, nil, &GapError{Offset: offset, Acked: cur.Length}
		}
		skip := cur.Length - offset
		if skip >= int64(len(data)) {
			return nil, nil, nil // all of it stored already
		}
		return appendBytes(*cur, data[skip:], now)
	})
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return ls.Length, nil
}

// appendBytes adds fresh bytes to a stream: the complete events (with the
// tail held before) become a raw chunk, the rest the new tail.
func appendBytes(cur store.LogStream, fresh []byte, now time.Time) (*store.LogStream, *store.LogChunk, error) {
	buf := make([]byte, 1, 1+len(cur.Tail)+len(fresh))
	buf[0] = encRaw
	buf = append(buf, cur.Tail...)
	buf = append(buf, fresh...)
	cut := completeEvents(buf[1:])
	next := cur
	start := cur.Length - int64(len(cur.Tail))
	next.Length += int64(len(fresh))
	next.Tail = append([]byte(nil), buf[1+cut:]...)
	next.Updated = now
	var chunk *store.LogChunk
	if cut > 0 {
		// One clock per log, never going back (replicas' clocks differ a
		// little), so that events come in time order.
		t := now
		if t.Before(cur.LastEvent) {
			t = cur.LastEvent
		}
		data := buf[:1+cut]
		chunk = &store.LogChunk{Seq: cur.NextSeq, Offset: start, Length: int64(cut), First: t, Last: t, Data: data}
		next.NextSeq++
		if next.FirstEvent.IsZero() {
			next.FirstEvent = t
		}
		next.LastEvent = t
		next.StoredBytes += int64(len(data))
	}
	return &next, chunk, nil
}

// Finish closes a job's log (its last line, if it had no newline, becomes
// the last event) and compacts it. Appends after it are refused. Finishing
// a finished log, or a job without a log, does nothing. The sweeper
// finishes the logs of ended jobs by itself; runners need not call it.
func (s *Service) Finish(ctx context.Context, jobID string) error {
	now := s.cfg.Now().UTC().Truncate(time.Millisecond)
	ls, err := s.cfg.Store.AppendLog(ctx, jobID, func(cur *store.LogStream) (*store.LogStream, *store.LogChunk, error) {
		if cur == nil || !cur.Finished.IsZero() {
			return nil, nil, nil
		}
		next := *cur
		next.Finished, next.Updated = now, now
		var chunk *store.LogChunk
		if len(cur.Tail) > 0 {
			t := now
			if t.Before(cur.LastEvent) {
				t = cur.LastEvent
			}
			data := append([]byte{encRaw}, cur.Tail...)
			chunk = &store.LogChunk{Seq: cur.NextSeq, Offset: cur.Length - int64(len(cur.Tail)), Length: int64(len(cur.Tail)), First: t, Last: t, Data: data}
			next.NextSeq++
			next.Tail = nil
			if next.FirstEvent.IsZero() {
				next.FirstEvent = t
			}
			next.LastEvent = t
			next.StoredBytes += int64(len(data))
		}
		return &next, chunk, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("finish log of job %s: %w", jobID, err)
	}
	if ls.Compacted {
		return nil
	}
	return s.compact(ctx, jobID)
}

// blockTarget is the size of log a compacted block holds (at most
// maxBlockBytes; a block ends at a chunk boundary).
const blockTarget = 1 << 20

// compact rewrites a finished log's raw chunks as blocks. A concurrent
// compaction of the same log makes ReplaceLogChunks refuse one of them
// (ErrConflict): that one stops, the other finishes the work.
func (s *Service) compact(ctx context.Context, jobID string) error {
	from := int64(0)
	for {
		chunks, err := s.cfg.Store.LogChunks(ctx, jobID, from, 64)
		if err != nil {
			return err
		}
		if len(chunks) == 0 {
			break
		}
		var (
			bb  blockBuilder
			run []store.LogChunk
		)
		flush := func() error {
			if len(run) == 0 {
				return nil
			}
			first, last := run[0], run[len(run)-1]
			data := bb.encode()
			c := store.LogChunk{Offset: first.Offset, Length: last.Offset + last.Length - first.Offset,
				First: first.First, Last: last.Last, Data: data}
			return s.cfg.Store.ReplaceLogChunks(ctx, jobID, first.Seq, last.Seq, c)
		}
		for _, c := range chunks {
			if c.Data[0] == encBlock || int64(bb.raw.Len())+c.Length > blockTarget && len(run) > 0 {
				if err := flush(); err != nil {
					return err
				}
				bb, run = blockBuilder{}, nil
			}
			if c.Data[0] == encBlock {
				from = c.Offset + c.Length
				continue
			}
			d, err := decodeChunk(c.Data, c.Length, msOf(c.First))
			if err != nil {
				return fmt.Errorf("compact log of job %s: chunk %d: %w", jobID, c.Seq, err)
			}
			bb.add(d)
			run = append(run, c)
			from = c.Offset + c.Length
		}
		if err := flush(); err != nil {
			return err
		}
	}
	return s.cfg.Store.MarkLogCompacted(ctx, jobID)
}

// SweeperLease is the lease whose holder finishes and expires logs: one
// replica at a time does it.
const SweeperLease = "joblogs-sweeper"

// Run finishes the logs of ended jobs and deletes expired logs until ctx
// ends, while this replica holds the sweeper lease.
func (s *Service) Run(ctx context.Context) {
	holder := "joblogs-" + uuid.NewString()
	leaseTTL := max(3*s.cfg.SweepInterval, 15*time.Second)
	defer func() {
		if err := s.cfg.Store.ReleaseLease(context.WithoutCancel(ctx), SweeperLease, holder); err != nil {
			s.log.Warn("release log sweeper lease", "err", err)
		}
	}()
	tick := time.NewTicker(s.cfg.SweepInterval)
	defer tick.Stop()
	for {
		ok, err := s.cfg.Store.AcquireLease(ctx, SweeperLease, holder, leaseTTL)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("acquire log sweeper lease", "err", err)
		}
		if ok {
			if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("log sweep", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Sweep runs one pass of the sweeper: it finishes and compacts the logs of
// jobs no longer in progress, and deletes the logs finished longer than
// the retention ago.
func (s *Service) Sweep(ctx context.Context) error {
	pending, err := s.cfg.Store.PendingLogs(ctx, 200)
	if err != nil {
		return err
	}
	var errs []error
	for _, ls := range pending {
		if ls.Finished.IsZero() {
			j, err := s.cfg.Store.GetJob(ctx, ls.JobID)
			if err == nil && j.Status == engine.JobInProgress {
				continue
			}
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				errs = append(errs, err)
				continue
			}
		}
		if err := s.Finish(ctx, ls.JobID); err != nil && !errors.Is(err, store.ErrConflict) {
			errs = append(errs, err)
		}
	}
	if s.cfg.Retention > 0 {
		before := s.cfg.Now().Add(-s.cfg.Retention)
		for {
			n, err := s.cfg.Store.DeleteLogs(ctx, before, 100)
			if err != nil {
				errs = append(errs, err)
				break
			}
			if n > 0 {
				s.log.Info("expired job logs deleted", "count", n)
			}
			if n < 100 {
				break
			}
		}
	}
	return errors.Join(errs...)
}
