package logsapi

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pipelined/pipelined/internal/joblogs"
	"github.com/pipelined/pipelined/internal/logsapi/logswire"
	"github.com/pipelined/pipelined/internal/store"
)

// ---------------------------------------------------------------------------
// GetLogEvents
// ---------------------------------------------------------------------------

// GetLogEvents tokens are "f/<offset>" (events from that byte offset on)
// and "b/<offset>" (events before it), the offset padded to 56 digits like
// AWS's. At either end of the stream the token passed in comes back, which
// is how clients see the end.
func posToken(dir byte, off int64) string { return fmt.Sprintf("%c/%056d", dir, off) }

func parsePosToken(s string) (dir byte, off int64, ok bool) {
	if len(s) != 58 || s[1] != '/' || (s[0] != 'f' && s[0] != 'b') {
		return 0, 0, false
	}
	for _, c := range s[2:] {
		if c < '0' || c > '9' {
			return 0, 0, false
		}
	}
	digits := strings.TrimLeft(s[2:], "0")
	if len(digits) > 18 {
		return 0, 0, false
	}
	for _, c := range digits {
		off = off*10 + int64(c-'0')
	}
	return s[0], off, true
}

func getLogEvents(h *Handler, ctx context.Context, body []byte) (any, error) {
	var in logswire.GetLogEventsRequest
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var v validation
	if in.LogStreamName == "" {
		v = append(v, "Value null at 'logStreamName' failed to satisfy constraint: Member must not be null")
	}
	v.name(in.LogStreamName, "logStreamName", streamNamePattern, `[^:*]*`)
	v.limit(in.Limit, "limit", maxEvents)
	v.time(in.StartTime, "startTime")
	v.time(in.EndTime, "endTime")
	v.token(in.NextToken, "nextToken")
	if err := v.err(); err != nil {
		return nil, err
	}
	pipeline, err := h.group(ctx, in.LogGroupName, in.LogGroupIdentifier)
	if err != nil {
		return nil, err
	}
	ls, err := h.cfg.Store.LogStreamByName(ctx, pipeline, in.LogStreamName)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("The specified log stream does not exist.")
	}
	if err != nil {
		return nil, err
	}
	limit := maxEvents
	if in.Limit != nil {
		limit = *in.Limit
	}
	start, end := msParam(in.StartTime, 0), msParam(in.EndTime, farFuture)
	inRange := func(ev joblogs.Event) bool { return ev.Time >= start && ev.Time < end }
	stored := ls.Length - int64(len(ls.Tail)) // where the stored events end

	dir, off := byte('f'), int64(0)
	switch {
	case in.NextToken != "":
		var ok bool
		if dir, off, ok = parsePosToken(in.NextToken); !ok || off > ls.Length {
			return nil, invalid("The specified nextToken is invalid.")
		}
	case in.StartFromHead != nil && *in.StartFromHead:
		if in.StartTime != nil {
			if off, err = h.cfg.Store.LogOffsetAt(ctx, ls.JobID, time.UnixMilli(start)); errors.Is(err, store.ErrNotFound) {
				off, err = stored, nil
			} else if err != nil {
				return nil, err
			}
		}
	default:
		dir, off = 'b', stored
	}
	out := &logswire.GetLogEventsResponse{Events: []logswire.OutputLogEvent{}}
	var evs []joblogs.Event
	if dir == 'f' {
		cur := h.cfg.Logs.NewCursor(ls.JobID, off)
		size := 0
		for len(evs) < limit {
			ev, ok, err := cur.Next(ctx)
			if err != nil {
				return nil, err
			}
			if !ok || ev.Time >= end {
				break
			}
			if !inRange(ev) {
				continue
			}
			if size += len(ev.Message) + eventOverhead; size > maxResponseSize && len(evs) > 0 {
				break
			}
			evs = append(evs, ev)
		}
		out.NextForwardToken, out.NextBackwardToken = posToken('f', off), posToken('b', off)
		if len(evs) > 0 {
			out.NextForwardToken = posToken('f', evs[len(evs)-1].End)
			out.NextBackwardToken = posToken('b', evs[0].Offset)
		}
	} else {
		evs, err = h.cfg.Logs.EventsBefore(ctx, ls.JobID, off, limit, maxResponseSize, inRange)
		if err != nil {
			return nil, err
		}
		out.NextForwardToken, out.NextBackwardToken = posToken('f', off), posToken('b', off)
		if len(evs) > 0 {
			out.NextForwardToken = posToken('f', evs[len(evs)-1].End)
			out.NextBackwardToken = posToken('b', evs[0].Offset)
		}
		if in.NextToken == "" && len(evs) == 0 {
			out.NextForwardToken = posToken('f', stored)
		}
	}
	for _, ev := range evs {
		out.Events = append(out.Events, logswire.OutputLogEvent{Timestamp: ptr(int(ev.Time)), IngestionTime: ptr(int(ev.Time)), Message: string(ev.Message)})
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// FilterLogEvents
// ---------------------------------------------------------------------------

// FilterLogEvents merges the group's streams by (timestamp, stream name,
// offset): the order of the pages, and what a nextToken (the last event
// considered) resumes after.

type streamCursor struct {
	ls     store.LogStream
	cur    *joblogs.Cursor
	head   joblogs.Event
	loaded bool // head is a real event (else the stream's first event time stands in)
}

type cursorHeap []*streamCursor

func (c cursorHeap) Len() int { return len(c) }
func (c cursorHeap) Less(i, j int) bool {
	a, b := c[i], c[j]
	if a.head.Time != b.head.Time {
		return a.head.Time < b.head.Time
	}
	if a.ls.Name != b.ls.Name {
		return a.ls.Name < b.ls.Name
	}
	return a.head.Offset < b.head.Offset
}
func (c cursorHeap) Swap(i, j int) { c[i], c[j] = c[j], c[i] }
func (c *cursorHeap) Push(x any)   { *c = append(*c, x.(*streamCursor)) }
func (c *cursorHeap) Pop() any {
	old := *c
	x := old[len(old)-1]
	*c = old[:len(old)-1]
	return x
}

// after reports whether an event of stream name comes after the position.
func after(ev joblogs.Event, name string, pos token) bool {
	if ev.Time != pos.Time {
		return ev.Time > pos.Time
	}
	if name != pos.Stream {
		return name > pos.Stream
	}
	return ev.Offset > pos.Offset
}

func filterLogEvents(h *Handler, ctx context.Context, body []byte) (any, error) {
	var in logswire.FilterLogEventsRequest
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	var v validation
	v.name(in.LogStreamNamePrefix, "logStreamNamePrefix", streamNamePattern, `[^:*]*`)
	for i, n := range in.LogStreamNames {
		v.name(n, fmt.Sprintf("logStreamNames.%d.member", i+1), streamNamePattern, `[^:*]*`)
	}
	if len(in.LogStreamNames) > maxNames {
		v.add(fmt.Sprint(len(in.LogStreamNames)), "logStreamNames", fmt.Sprintf("Member must have length less than or equal to %d", maxNames))
	}
	v.limit(in.Limit, "limit", maxEvents)
	v.time(in.StartTime, "startTime")
	v.time(in.EndTime, "endTime")
	v.token(in.NextToken, "nextToken")
	if len(in.FilterPattern) > maxPatternLen {
		v.add(in.FilterPattern[:32]+"...", "filterPattern", fmt.Sprintf("Member must have length less than or equal to %d", maxPatternLen))
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	if len(in.LogStreamNames) > 0 && in.LogStreamNamePrefix != "" {
		return nil, invalid("logStreamNames and logStreamNamePrefix are mutually exclusive parameters.")
	}
	match, err := ParsePattern(in.FilterPattern)
	if err != nil {
		return nil, invalid("Invalid filter pattern: %v", err)
	}
	pipeline, err := h.group(ctx, in.LogGroupName, in.LogGroupIdentifier)
	if err != nil {
		return nil, err
	}
	limit := maxEvents
	if in.Limit != nil {
		limit = *in.Limit
	}
	start, end := msParam(in.StartTime, 0), msParam(in.EndTime, farFuture)
	if end < start {
		return nil, invalid("endTime must be greater than or equal to startTime.")
	}
	var pos *token
	if in.NextToken != "" {
		t, err := decodeToken(in.NextToken)
		if err != nil || t.Kind != "e" {
			return nil, invalid("The specified nextToken is invalid.")
		}
		pos = &t
	}
	q := store.LogStreamQuery{Pipeline: pipeline, Names: in.LogStreamNames, Prefix: in.LogStreamNamePrefix, Limit: maxFilterStream}
	if in.StartTime != nil {
		q.EventsFrom = time.UnixMilli(start)
	}
	if pos != nil && (in.StartTime == nil || pos.Time > start) {
		q.EventsFrom = time.UnixMilli(pos.Time)
	}
	if in.EndTime != nil {
		q.EventsTo = time.UnixMilli(end)
	}
	streams, err := h.cfg.Store.ListLogStreams(ctx, q)
	if err != nil {
		return nil, err
	}
	// Streams start unloaded, keyed by the time of their first event: a
	// stream is read only once its turn may have come.
	from := start
	if pos != nil {
		from = max(from, pos.Time)
	}
	hp := make(cursorHeap, 0, len(streams))
	for _, ls := range streams {
		if ls.FirstEvent.IsZero() {
			continue
		}
		hp = append(hp, &streamCursor{ls: ls, head: joblogs.Event{Time: max(ls.FirstEvent.UnixMilli(), from), Offset: -1}})
	}
	heap.Init(&hp)
	out := &logswire.FilterLogEventsResponse{Events: []logswire.FilteredLogEvent{}}
	size, scanned := 0, 0
	var last *token
	for hp.Len() > 0 {
		top := hp[0]
		if !top.loaded {
			// Load: seek to the first chunk that may hold events from
			// `from` on, then the first event after the position.
			off, err := h.cfg.Store.LogOffsetAt(ctx, top.ls.JobID, time.UnixMilli(from))
			if errors.Is(err, store.ErrNotFound) {
				heap.Pop(&hp)
				continue
			}
			if err != nil {
				return nil, err
			}
			top.cur = h.cfg.Logs.NewCursor(top.ls.JobID, off)
			top.loaded = true
			if ok, err := h.advance(ctx, top, &hp, from, pos); err != nil {
				return nil, err
			} else if !ok {
				continue
			}
			heap.Fix(&hp, 0)
			continue
		}
		ev := top.head
		if ev.Time > end {
			break
		}
		if len(out.Events) == limit || scanned >= maxScanBytes {
			out.NextToken = encodeToken(*last)
			return out, nil
		}
		if match(ev.Message) {
			if size+len(ev.Message)+eventOverhead > maxResponseSize && len(out.Events) > 0 {
				out.NextToken = encodeToken(*last)
				return out, nil
			}
			size += len(ev.Message) + eventOverhead
			out.Events = append(out.Events, logswire.FilteredLogEvent{
				LogStreamName: top.ls.Name, Timestamp: ptr(int(ev.Time)), IngestionTime: ptr(int(ev.Time)),
				Message: string(ev.Message), EventId: eventID(top.ls.JobID, ev.Offset),
			})
		}
		scanned += len(ev.Message) + 1
		last = &token{Kind: "e", Stream: top.ls.Name, Time: ev.Time, Offset: ev.Offset}
		if ok, err := h.advance(ctx, top, &hp, from, nil); err != nil {
			return nil, err
		} else if !ok {
			continue
		}
		heap.Fix(&hp, 0)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// advance moves the top cursor to its next event at or after from (and
// after pos, when given); it pops the cursor and returns false at its end.
func (h *Handler) advance(ctx context.Context, c *streamCursor, hp *cursorHeap, from int64, pos *token) (bool, error) {
	for {
		ev, ok, err := c.cur.Next(ctx)
		if err != nil {
			return false, err
		}
		if !ok {
			heap.Pop(hp)
			return false, nil
		}
		if ev.Time < from || pos != nil && !after(ev, c.ls.Name, *pos) {
			continue
		}
		c.head = ev
		return true, nil
	}
}
