package joblogs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/engine"
	"github.com/pipelined/pipelined/internal/joblogs"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/store/sqlite"
)

// clock is a test clock the service reads.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// setup opens a SQLite store holding one in-progress job, and a service
// with a 24h retention on the test clock.
func setup(t *testing.T) (*sqlite.Store, *joblogs.Service, *clock, func(status string)) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "db.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	doc, _ := json.Marshal(engine.JobDoc{Stage: "Build", Action: "Run", ActionExec: "ae-1", Data: []byte("{}")})
	job := store.Job{ID: "job-1", ActionType: store.ActionTypeKey{Category: "Build", Owner: "Custom", Provider: "T", Version: "1"},
		Pipeline: "app", ExecutionID: "x-1", Status: engine.JobInProgress, Nonce: "n", Doc: doc, Created: time.Now(), Updated: time.Now()}
	put := func(status string) {
		job.Status = status
		if err := st.InPipeline(ctx, "app", func(tx store.PipelineTx) error { return tx.PutJob(job) }); err != nil {
			t.Fatal(err)
		}
	}
	put(engine.JobInProgress)
	clk := &clock{t: time.UnixMilli(1_700_000_000_000)}
	svc := joblogs.New(joblogs.Config{Store: st, Retention: 24 * time.Hour, Now: clk.now, Logger: slog.New(slog.DiscardHandler)})
	return st, svc, clk, put
}

func readAll(t *testing.T, svc *joblogs.Service, jobID string) []joblogs.Event {
	t.Helper()
	cur := svc.NewCursor(jobID, 0)
	var out []joblogs.Event
	for {
		ev, ok, err := cur.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		out = append(out, ev)
	}
}

// TestSweepFinishesCompactsAndExpires: the sweeper leaves a running job's
// log open, finishes and compacts it once the job ended (the events and
// their times unchanged), and deletes it after the retention.
func TestSweepFinishesCompactsAndExpires(t *testing.T) {
	st, svc, clk, putJob := setup(t)
	ctx := context.Background()
	var all bytes.Buffer
	off := int64(0)
	for i := range 30 {
		var piece bytes.Buffer
		for j := range 5000 {
			fmt.Fprintf(&piece, "piece %02d line %04d\n", i, j)
		}
		if i == 29 {
			piece.WriteString("last, without newline")
		}
		acked, err := svc.Append(ctx, "job-1", off, piece.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		all.Write(piece.Bytes())
		off = acked
		clk.add(time.Second)
	}
	before := readAll(t, svc, "job-1")
	if len(before) != 30*5000 { // the unterminated last line is held back while running
		t.Fatalf("%d events while running", len(before))
	}
	if err := svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	ls, err := st.GetLogStream(ctx, "job-1")
	if err != nil || !ls.Finished.IsZero() {
		t.Fatalf("a running job's log was finished: %+v %v", ls, err)
	}
	if _, err := svc.Append(ctx, "job-1", off, []byte("x")); err != nil {
		t.Fatal(err)
	}
	off++
	all.WriteByte('x')

	putJob("Succeeded")
	clk.add(time.Second)
	if err := svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	ls, err = st.GetLogStream(ctx, "job-1")
	if err != nil || ls.Finished.IsZero() || !ls.Compacted || ls.Tail != nil || ls.Length != off {
		t.Fatalf("after the job ended: %+v %v", ls, err)
	}
	chunks, err := st.LogChunks(ctx, "job-1", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) >= 30 || ls.StoredBytes >= int64(all.Len())/2 {
		t.Errorf("not compacted: %d chunks, %d bytes stored for %d", len(chunks), ls.StoredBytes, all.Len())
	}
	after := readAll(t, svc, "job-1")
	if len(after) != len(before)+1 {
		t.Fatalf("%d events after compaction, want %d", len(after), len(before)+1)
	}
	for i := range before {
		if after[i].Offset != before[i].Offset || after[i].Time != before[i].Time || !bytes.Equal(after[i].Message, before[i].Message) {
			t.Fatalf("event %d changed: %+v, was %+v", i, after[i], before[i])
		}
	}
	if last := after[len(after)-1]; string(last.Message) != "last, without newlinex" {
		t.Errorf("last event %q", last.Message)
	}
	var b bytes.Buffer
	if err := svc.WriteTo(ctx, "job-1", &b); err != nil || !bytes.Equal(b.Bytes(), all.Bytes()) {
		t.Errorf("stored bytes differ (%v)", err)
	}
	// A finished log takes no more bytes.
	if _, err := st.AppendLog(ctx, "job-1", func(cur *store.LogStream) (*store.LogStream, *store.LogChunk, error) { return nil, nil, nil }); err != nil {
		t.Fatal(err)
	}

	// Retention: kept for 24h after the end, then deleted.
	clk.add(23 * time.Hour)
	if err := svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetLogStream(ctx, "job-1"); err != nil {
		t.Fatalf("deleted before the retention: %v", err)
	}
	clk.add(2 * time.Hour)
	if err := svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetLogStream(ctx, "job-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after the retention: %v, want deleted", err)
	}
	if chunks, _ := st.LogChunks(ctx, "job-1", 0, 10); len(chunks) != 0 {
		t.Errorf("%d chunks left", len(chunks))
	}
}

// TestSweepRunsOnOneReplica: two services on one database; only the lease
// holder sweeps.
func TestSweepLease(t *testing.T) {
	st, svc, _, _ := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); svc.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, err := st.AcquireLease(context.Background(), joblogs.SweeperLease, "another-replica", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break // held by the running sweeper
		}
		_ = st.ReleaseLease(context.Background(), joblogs.SweeperLease, "another-replica")
		if time.Now().After(deadline) {
			t.Fatal("the sweeper never took its lease")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	// Released on return: another replica takes over at once.
	ok, err := st.AcquireLease(context.Background(), joblogs.SweeperLease, "another-replica", time.Minute)
	if err != nil || !ok {
		t.Fatalf("lease after the sweeper stopped: %v %v", ok, err)
	}
}
