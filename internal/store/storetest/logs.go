package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/store"
)

var logTests = []testCase{
	{"LogAppendRoundTrip", testLogAppendRoundTrip},
	{"LogAppendFnError", testLogAppendFnError},
	{"LogAppendConcurrent", testLogAppendConcurrent},
	{"LogChunkSeek", testLogChunkSeek},
	{"LogReplaceChunks", testLogReplaceChunks},
	{"LogListStreamsAndGroups", testLogListStreamsAndGroups},
	{"LogPendingAndDelete", testLogPendingAndDelete},
	{"LogAcrossHandles", testLogAcrossHandles},
}

// logT is a millisecond time from a fixed base, as the service gives them.
func logT(ms int64) time.Time { return time.UnixMilli(1_700_000_000_000 + ms).UTC() }

// appendChunk appends data as one chunk (the store does not interpret it)
// and keeps tail as the stream's tail.
func appendChunk(t *testing.T, st store.Store, jobID, pipeline, name string, data, tail []byte, at int64) store.LogStream {
	t.Helper()
	ls, err := st.AppendLog(t.Context(), jobID, func(cur *store.LogStream) (*store.LogStream, *store.LogChunk, error) {
		if cur == nil {
			cur = &store.LogStream{Pipeline: pipeline, Name: name, Created: logT(at)}
		}
		next := *cur
		var c *store.LogChunk
		start := cur.Length - int64(len(cur.Tail))
		if len(data) > 0 {
			c = &store.LogChunk{Seq: cur.NextSeq, Offset: start, Length: int64(len(data)), First: logT(at), Last: logT(at), Data: data}
			next.NextSeq++
			if next.FirstEvent.IsZero() {
				next.FirstEvent = logT(at)
			}
			next.LastEvent = logT(at)
			next.StoredBytes += int64(len(data))
		}
		next.Length = start + int64(len(data)) + int64(len(tail))
		next.Tail = tail
		next.Updated = logT(at)
		return &next, c, nil
	})
	noErr(t, "AppendLog "+jobID, err)
	return ls
}

func testLogAppendRoundTrip(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	if _, err := st.GetLogStream(ctx, "j1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetLogStream of none: %v, want ErrNotFound", err)
	}
	// fn returning nil for a stream that does not exist: ErrNotFound, nothing stored.
	if _, err := st.AppendLog(ctx, "j1", func(cur *store.LogStream) (*store.LogStream, *store.LogChunk, error) {
		if cur != nil {
			t.Errorf("cur of a new log = %+v", cur)
		}
		return nil, nil, nil
	}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("AppendLog nil on none: %v", err)
	}
	ls := appendChunk(t, st, "j1", "app", "exec-1", []byte("r\x00line one\n"), []byte("par"), 5)
	want := store.LogStream{JobID: "j1", Pipeline: "app", Name: "exec-1", Length: 14, Tail: []byte("par"), NextSeq: 1,
		FirstEvent: logT(5), LastEvent: logT(5), StoredBytes: 11, Created: logT(5), Updated: logT(5)}
	checkLogStream(t, "AppendLog", ls, want)
	got, err := st.GetLogStream(ctx, "j1")
	noErr(t, "GetLogStream", err)
	checkLogStream(t, "GetLogStream", got, want)
	got, err = st.LogStreamByName(ctx, "app", "exec-1")
	noErr(t, "LogStreamByName", err)
	checkLogStream(t, "LogStreamByName", got, want)
	if _, err := st.LogStreamByName(ctx, "app", "exec-2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LogStreamByName of none: %v", err)
	}
	// fn returning nil changes nothing and returns the current stream.
	got, err = st.AppendLog(ctx, "j1", func(cur *store.LogStream) (*store.LogStream, *store.LogChunk, error) {
		checkLogStream(t, "cur", *cur, want)
		return nil, nil, nil
	})
	noErr(t, "AppendLog unchanged", err)
	checkLogStream(t, "AppendLog unchanged", got, want)

	// A second chunk; finishing sets Finished and the data comes back byte for byte.
	appendChunk(t, st, "j1", "", "", []byte("partial\n\xff\xfe"), nil, 9)
	chunks, err := st.LogChunks(ctx, "j1", 0, 10)
	noErr(t, "LogChunks", err)
	if len(chunks) != 2 || !bytes.Equal(chunks[0].Data, []byte("r\x00line one\n")) || !bytes.Equal(chunks[1].Data, []byte("partial\n\xff\xfe")) ||
		chunks[1].Seq != 1 || chunks[1].Offset != 11 || chunks[1].Length != 10 || !chunks[1].First.Equal(logT(9)) || chunks[0].JobID != "j1" {
		t.Errorf("LogChunks = %+v", chunks)
	}
	// A new stream under a taken name is refused.
	_, err = st.AppendLog(ctx, "j2", func(*store.LogStream) (*store.LogStream, *store.LogChunk, error) {
		return &store.LogStream{Pipeline: "app", Name: "exec-1", Created: logT(1), Updated: logT(1)}, nil, nil
	})
	if !errors.Is(err, store.ErrAlreadyExists) {
		t.Errorf("AppendLog with a taken name: %v, want ErrAlreadyExists", err)
	}
}

func checkLogStream(t *testing.T, what string, got, want store.LogStream) {
	t.Helper()
	if got.JobID != want.JobID || got.Pipeline != want.Pipeline || got.Name != want.Name || got.Length != want.Length ||
		!bytes.Equal(got.Tail, want.Tail) || got.NextSeq != want.NextSeq || !got.FirstEvent.Equal(want.FirstEvent) ||
		!got.LastEvent.Equal(want.LastEvent) || got.StoredBytes != want.StoredBytes || !got.Created.Equal(want.Created) ||
		!got.Updated.Equal(want.Updated) || !got.Finished.Equal(want.Finished) || got.Compacted != want.Compacted {
		t.Errorf("%s = %+v,\nwant %+v", what, got, want)
	}
}

func testLogAppendFnError(t *testing.T, s *suite) {
	st := s.open(t)
	boom := errors.New("boom")
	appendChunk(t, st, "j1", "app", "e1", []byte("a\n"), nil, 1)
	_, err := st.AppendLog(t.Context(), "j1", func(cur *store.LogStream) (*store.LogStream, *store.LogChunk, error) {
		return nil, nil, fmt.Errorf("wrapped: %w", boom)
	})
	if !errors.Is(err, boom) {
		t.Errorf("AppendLog fn error = %v", err)
	}
	ls, err := st.GetLogStream(t.Context(), "j1")
	noErr(t, "GetLogStream", err)
	if ls.Length != 2 || ls.NextSeq != 1 {
		t.Errorf("after a failed append: %+v", ls)
	}
}

// testLogAppendConcurrent: appends to one log never interleave: every fn
// sees the stream the previous one stored (also on a second handle).
func testLogAppendConcurrent(t *testing.T, s *suite) {
	st := s.open(t)
	other := st
	if s.h.Reopen != nil {
		other = s.reopen(t, st)
	}
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := st
			if i%2 == 1 {
				h = other
			}
			appendChunk(t, h, "j1", "app", "e1", []byte(fmt.Sprintf("line %02d\n", i)), nil, int64(i))
		}()
	}
	wg.Wait()
	ls, err := st.GetLogStream(t.Context(), "j1")
	noErr(t, "GetLogStream", err)
	if ls.NextSeq != n || ls.Length != n*8 {
		t.Errorf("after %d concurrent appends: %+v", n, ls)
	}
	chunks, err := st.LogChunks(t.Context(), "j1", 0, 100)
	noErr(t, "LogChunks", err)
	for i, c := range chunks {
		if c.Seq != int64(i) || c.Offset != int64(i)*8 {
			t.Errorf("chunk %d: seq %d offset %d", i, c.Seq, c.Offset)
		}
	}
}

func testLogChunkSeek(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	for i := range 5 { // chunks [0,10) [10,20) ... [40,50)
		appendChunk(t, st, "j1", "app", "e1", bytes.Repeat([]byte{byte('a' + i)}, 10), nil, int64(i))
	}
	appendChunk(t, st, "j2", "app", "e2", []byte("other log\n"), nil, 1)
	seqs := func(cs []store.LogChunk) []int64 {
		out := []int64{}
		for _, c := range cs {
			out = append(out, c.Seq)
		}
		return out
	}
	for _, tc := range []struct {
		from  int64
		limit int
		want  []int64
	}{{0, 10, []int64{0, 1, 2, 3, 4}}, {9, 10, []int64{0, 1, 2, 3, 4}}, {10, 10, []int64{1, 2, 3, 4}}, {25, 2, []int64{2, 3}}, {49, 10, []int64{4}}, {50, 10, []int64{}}} {
		cs, err := st.LogChunks(ctx, "j1", tc.from, tc.limit)
		noErr(t, "LogChunks", err)
		if got := seqs(cs); !slices.Equal(got, tc.want) {
			t.Errorf("LogChunks from %d limit %d = %v, want %v", tc.from, tc.limit, got, tc.want)
		}
	}
	for at, want := range map[int64]int64{0: 0, 2: 20, 4: 40} {
		off, err := st.LogOffsetAt(ctx, "j1", logT(at))
		if err != nil || off != want {
			t.Errorf("LogOffsetAt %d = %d %v, want %d", at, off, err, want)
		}
	}
	if _, err := st.LogOffsetAt(ctx, "j1", logT(5)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("LogOffsetAt after the last event: %v, want ErrNotFound", err)
	}
	for _, tc := range []struct {
		before int64
		limit  int
		want   []int64
	}{{50, 10, []int64{4, 3, 2, 1, 0}}, {41, 2, []int64{4, 3}}, {40, 2, []int64{3, 2}}, {1, 10, []int64{0}}, {0, 10, []int64{}}} {
		cs, err := st.LogChunksBefore(ctx, "j1", tc.before, tc.limit)
		noErr(t, "LogChunksBefore", err)
		if got := seqs(cs); !slices.Equal(got, tc.want) {
			t.Errorf("LogChunksBefore %d limit %d = %v, want %v", tc.before, tc.limit, got, tc.want)
		}
	}
}

func testLogReplaceChunks(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	for i := range 4 {
		appendChunk(t, st, "j1", "app", "e1", bytes.Repeat([]byte{byte('a' + i)}, 10), nil, int64(i))
	}
	block := store.LogChunk{Offset: 10, Length: 20, First: logT(1), Last: logT(2), Data: []byte("z-block")}
	// A range the chunks do not cover exactly is a conflict.
	if err := st.ReplaceLogChunks(ctx, "j1", 1, 2, store.LogChunk{Offset: 10, Length: 25, Data: []byte("x")}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("ReplaceLogChunks of a wrong range: %v, want ErrConflict", err)
	}
	if err := st.ReplaceLogChunks(ctx, "j1", 5, 6, block); !errors.Is(err, store.ErrConflict) {
		t.Errorf("ReplaceLogChunks of no chunks: %v, want ErrConflict", err)
	}
	noErr(t, "ReplaceLogChunks", st.ReplaceLogChunks(ctx, "j1", 1, 2, block))
	cs, err := st.LogChunks(ctx, "j1", 0, 10)
	noErr(t, "LogChunks", err)
	if len(cs) != 3 || cs[1].Seq != 2 || cs[1].Offset != 10 || cs[1].Length != 20 || string(cs[1].Data) != "z-block" ||
		!cs[1].First.Equal(logT(1)) || !cs[1].Last.Equal(logT(2)) || cs[2].Seq != 3 {
		t.Errorf("after replace: %+v", cs)
	}
	ls, err := st.GetLogStream(ctx, "j1")
	noErr(t, "GetLogStream", err)
	if ls.StoredBytes != 40-20+7 {
		t.Errorf("StoredBytes = %d, want 27 (two chunks of 10 bytes became 7)", ls.StoredBytes)
	}
	// A second compactor repeating the same replacement changes nothing.
	noErr(t, "ReplaceLogChunks again", st.ReplaceLogChunks(ctx, "j1", 1, 2, block))
	if ls, _ := st.GetLogStream(ctx, "j1"); ls.StoredBytes != 27 {
		t.Errorf("StoredBytes after a repeated replacement = %d, want 27", ls.StoredBytes)
	}
	// A second compactor that read the old chunks conflicts: seq 1 is gone.
	if err := st.ReplaceLogChunks(ctx, "j1", 1, 1, store.LogChunk{Offset: 10, Length: 10, Data: []byte("x")}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second ReplaceLogChunks: %v, want ErrConflict", err)
	}
}

func testLogListStreamsAndGroups(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	appendChunk(t, st, "j1", "app", "b-2", []byte("x\n"), nil, 100)
	appendChunk(t, st, "j2", "app", "a-1", []byte("y\n"), nil, 200)
	appendChunk(t, st, "j2", "app", "a-1", []byte("y\n"), nil, 300)
	appendChunk(t, st, "j3", "app", "b-1", nil, []byte("tail only"), 50)
	appendChunk(t, st, "j4", "web", "c-1", []byte("z\n"), nil, 10)
	appendChunk(t, st, "j5", "apple", "d-1", []byte("w\n"), nil, 20)
	names := func(q store.LogStreamQuery) []string {
		t.Helper()
		if q.Limit == 0 {
			q.Limit = 100
		}
		ls, err := st.ListLogStreams(ctx, q)
		noErr(t, "ListLogStreams", err)
		out := []string{}
		for _, l := range ls {
			if l.Tail != nil {
				t.Errorf("ListLogStreams returned a tail")
			}
			out = append(out, l.Name)
		}
		return out
	}
	for what, tc := range map[string]struct {
		q    store.LogStreamQuery
		want []string
	}{
		"all":        {store.LogStreamQuery{Pipeline: "app"}, []string{"a-1", "b-1", "b-2"}},
		"limit":      {store.LogStreamQuery{Pipeline: "app", Limit: 2}, []string{"a-1", "b-1"}},
		"after":      {store.LogStreamQuery{Pipeline: "app", After: "a-1"}, []string{"b-1", "b-2"}},
		"prefix":     {store.LogStreamQuery{Pipeline: "app", Prefix: "b-"}, []string{"b-1", "b-2"}},
		"names":      {store.LogStreamQuery{Pipeline: "app", Names: []string{"b-2", "a-1", "zz"}}, []string{"a-1", "b-2"}},
		"from":       {store.LogStreamQuery{Pipeline: "app", EventsFrom: logT(150)}, []string{"a-1"}},
		"to":         {store.LogStreamQuery{Pipeline: "app", EventsTo: logT(150)}, []string{"b-2"}},
		"range":      {store.LogStreamQuery{Pipeline: "app", EventsFrom: logT(100), EventsTo: logT(200)}, []string{"a-1", "b-2"}},
		"no such":    {store.LogStreamQuery{Pipeline: "nope"}, []string{}},
		"other pipe": {store.LogStreamQuery{Pipeline: "web"}, []string{"c-1"}},
	} {
		if got := names(tc.q); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", what, got, tc.want)
		}
	}
	groups, err := st.ListLogGroups(ctx, "", "", 10)
	noErr(t, "ListLogGroups", err)
	if len(groups) != 3 || groups[0].Pipeline != "app" || groups[1].Pipeline != "apple" || groups[2].Pipeline != "web" ||
		!groups[0].Created.Equal(logT(50)) || groups[0].StoredBytes != 6 {
		t.Errorf("ListLogGroups = %+v", groups)
	}
	groups, err = st.ListLogGroups(ctx, "app", "app", 10)
	noErr(t, "ListLogGroups", err)
	if len(groups) != 1 || groups[0].Pipeline != "apple" {
		t.Errorf("ListLogGroups prefix app after app = %+v", groups)
	}
	groups, err = st.ListLogGroups(ctx, "", "", 1)
	noErr(t, "ListLogGroups", err)
	if len(groups) != 1 || groups[0].Pipeline != "app" {
		t.Errorf("ListLogGroups limit 1 = %+v", groups)
	}
}

func finishLog(t *testing.T, st store.Store, jobID string, at int64) {
	t.Helper()
	_, err := st.AppendLog(t.Context(), jobID, func(cur *store.LogStream) (*store.LogStream, *store.LogChunk, error) {
		next := *cur
		next.Finished, next.Updated = logT(at), logT(at)
		return &next, nil, nil
	})
	noErr(t, "finish "+jobID, err)
}

func testLogPendingAndDelete(t *testing.T, s *suite) {
	st := s.open(t)
	ctx := t.Context()
	appendChunk(t, st, "old", "app", "e1", []byte("a\n"), nil, 30)
	appendChunk(t, st, "new", "app", "e2", []byte("b\n"), nil, 20)
	appendChunk(t, st, "open", "app", "e3", []byte("c\n"), nil, 10)
	finishLog(t, st, "old", 100)
	finishLog(t, st, "new", 500)
	if err := st.MarkLogCompacted(ctx, "open"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MarkLogCompacted of an open log: %v, want ErrNotFound", err)
	}
	noErr(t, "MarkLogCompacted", st.MarkLogCompacted(ctx, "old"))
	pending, err := st.PendingLogs(ctx, 10)
	noErr(t, "PendingLogs", err)
	var ids []string
	for _, p := range pending {
		ids = append(ids, p.JobID)
	}
	if !slices.Equal(ids, []string{"open", "new"}) {
		t.Errorf("PendingLogs = %v, want [open new] (least recently updated first)", ids)
	}
	n, err := st.DeleteLogs(ctx, logT(100), 10)
	noErr(t, "DeleteLogs", err)
	if n != 0 {
		t.Errorf("DeleteLogs before the first finish deleted %d", n)
	}
	n, err = st.DeleteLogs(ctx, logT(400), 10)
	noErr(t, "DeleteLogs", err)
	if n != 1 {
		t.Errorf("DeleteLogs deleted %d, want 1", n)
	}
	if _, err := st.GetLogStream(ctx, "old"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted stream: %v", err)
	}
	if cs, err := st.LogChunks(ctx, "old", 0, 10); err != nil || len(cs) != 0 {
		t.Errorf("chunks of a deleted stream: %v %v", cs, err)
	}
	for _, id := range []string{"new", "open"} {
		if _, err := st.GetLogStream(ctx, id); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	n, err = st.DeleteLogs(ctx, logT(10_000), 10)
	noErr(t, "DeleteLogs", err)
	if n != 1 {
		t.Errorf("DeleteLogs deleted %d, want 1 (open logs stay)", n)
	}
}

func testLogAcrossHandles(t *testing.T, s *suite) {
	a := s.open(t)
	b := s.reopen(t, a)
	appendChunk(t, a, "j1", "app", "e1", []byte("from a\n"), []byte("t"), 1)
	ls := appendChunk(t, b, "j1", "app", "e1", []byte("from b\n"), nil, 2)
	if ls.Length != 14 || ls.NextSeq != 2 {
		t.Errorf("second handle's append: %+v", ls)
	}
	cs, err := a.LogChunks(t.Context(), "j1", 0, 10)
	noErr(t, "LogChunks", err)
	if len(cs) != 2 || string(cs[1].Data) != "from b\n" || cs[1].Offset != 7 {
		t.Errorf("chunks read on the first handle: %+v", cs)
	}
}
