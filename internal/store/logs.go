package store

import (
	"context"
	"time"
)

// ---------------------------------------------------------------------------
// Job logs
// ---------------------------------------------------------------------------

// LogStream is the head record of one job's log (a CloudWatch Logs stream
// to readers). The log's bytes are in LogChunks, except Tail: the bytes of
// an event not complete yet (a line without its newline), kept here until
// more bytes complete it or the log is finished. The service owns the
// meaning of every field; the store keeps them as given.
type LogStream struct {
	JobID    string
	Pipeline string // the log group is the pipeline's
	Name     string // unique per pipeline
	// Length is how many bytes of the log are stored (in chunks and Tail).
	Length int64
	Tail   []byte
	// NextSeq is the Seq the next chunk gets.
	NextSeq int64
	// FirstEvent and LastEvent are the times of the first and last stored
	// event (zero when there is none yet).
	FirstEvent time.Time
	LastEvent  time.Time
	// StoredBytes is the size of the chunks' data.
	StoredBytes int64
	Created     time.Time
	Updated     time.Time // the last append
	// Finished is when the log was closed (zero while it is open);
	// Compacted marks a finished log whose chunks were rewritten in their
	// final form.
	Finished  time.Time
	Compacted bool
}

// LogChunk is a piece of a job's log: the bytes [Offset, Offset+Length) in
// the service's encoding (Data). Chunks of a log are ordered by Seq, and
// their ranges follow each other in that order.
type LogChunk struct {
	JobID  string
	Seq    int64
	Offset int64
	Length int64
	// First and Last are the times of the chunk's first and last event.
	First time.Time
	Last  time.Time
	Data  []byte
}

// LogGroup summarizes the streams of one pipeline.
type LogGroup struct {
	Pipeline    string
	Created     time.Time // the oldest stream's
	StoredBytes int64
}

// LogStreamQuery selects streams of one pipeline.
type LogStreamQuery struct {
	Pipeline string
	// Prefix, when set, is a prefix of the names; Names, when set, lists
	// the names (the two are not combined).
	Prefix string
	Names  []string
	// After: only names that sort after it (byte order).
	After string
	// EventsFrom and EventsTo, when not zero, keep the streams that have an
	// event in [EventsFrom, EventsTo] (by FirstEvent and LastEvent).
	EventsFrom time.Time
	EventsTo   time.Time
	Limit      int
}

// Logs stores job logs. Times are kept at millisecond precision.
type Logs interface {
	// AppendLog runs fn in a transaction that holds the job's log: fn gets
	// the stream (nil when there is none yet) and returns the stream to
	// store and, optionally, a chunk to add (nil: none). fn returning a nil
	// stream changes nothing. Appends to one log, also from other replicas,
	// run one after another. Returns the stored stream (the current one
	// when fn changed nothing; ErrNotFound when there is none), or fn's
	// error. ErrAlreadyExists when a new stream's (Pipeline, Name) is taken.
	AppendLog(ctx context.Context, jobID string, fn func(cur *LogStream) (*LogStream, *LogChunk, error)) (LogStream, error)
	// GetLogStream reads a job's stream (ErrNotFound).
	GetLogStream(ctx context.Context, jobID string) (LogStream, error)
	// LogStreamByName reads a stream by pipeline and name (ErrNotFound).
	LogStreamByName(ctx context.Context, pipeline, name string) (LogStream, error)
	// ListLogStreams returns up to q.Limit streams matching q, in name
	// order, without Tail.
	ListLogStreams(ctx context.Context, q LogStreamQuery) ([]LogStream, error)
	// ListLogGroups returns up to limit groups (pipelines with at least
	// one stream) whose names sort after the given one and start with
	// prefix, in name order.
	ListLogGroups(ctx context.Context, prefix, after string, limit int) ([]LogGroup, error)
	// LogChunks returns up to limit chunks of a log that end after the
	// given offset (Offset+Length > from), by Seq.
	LogChunks(ctx context.Context, jobID string, from int64, limit int) ([]LogChunk, error)
	// LogOffsetAt returns the Offset of the first chunk (by Seq) whose
	// Last time is at or after t: where a reader of the events from t on
	// starts. ErrNotFound when there is none.
	LogOffsetAt(ctx context.Context, jobID string, t time.Time) (int64, error)
	// LogChunksBefore returns up to limit chunks of a log that start
	// before the given offset, by Seq descending.
	LogChunksBefore(ctx context.Context, jobID string, before int64, limit int) ([]LogChunk, error)
	// ReplaceLogChunks replaces the chunks of a log with Seq in [fromSeq,
	// toSeq] by one chunk (stored with Seq toSeq), in one transaction, and
	// updates the stream's StoredBytes by the difference in data size (so
	// that a second compactor repeating the same replacement changes
	// nothing). ErrConflict when those chunks do not cover exactly c's range.
	ReplaceLogChunks(ctx context.Context, jobID string, fromSeq, toSeq int64, c LogChunk) error
	// MarkLogCompacted sets a finished stream's Compacted flag.
	MarkLogCompacted(ctx context.Context, jobID string) error
	// PendingLogs returns up to limit streams that are open, or finished
	// and not compacted, least recently updated first, without Tail.
	PendingLogs(ctx context.Context, limit int) ([]LogStream, error)
	// DeleteLogs deletes up to limit streams finished before the given
	// time, with their chunks, and returns how many it deleted.
	DeleteLogs(ctx context.Context, finishedBefore time.Time, limit int) (int, error)
}
