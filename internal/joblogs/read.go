package joblogs

import (
	"context"
	"fmt"
	"io"
)

// WriteTo writes a job's whole log as stored (the bytes of every chunk,
// then the tail not yet made into events) to w.
func (s *Service) WriteTo(ctx context.Context, jobID string, w io.Writer) error {
	ls, err := s.cfg.Store.GetLogStream(ctx, jobID)
	if err != nil {
		return err
	}
	from := int64(0)
	for {
		chunks, err := s.cfg.Store.LogChunks(ctx, jobID, from, 16)
		if err != nil {
			return err
		}
		if len(chunks) == 0 {
			break
		}
		for _, c := range chunks {
			if c.Offset != from {
				return fmt.Errorf("log of job %s: chunk %d starts at %d, want %d", jobID, c.Seq, c.Offset, from)
			}
			d, err := decodeChunk(c.Data, c.Length, msOf(c.First))
			if err != nil {
				return fmt.Errorf("log of job %s: chunk %d: %w", jobID, c.Seq, err)
			}
			if _, err := w.Write(d.data); err != nil {
				return err
			}
			from += c.Length
		}
	}
	_, err = w.Write(ls.Tail)
	return err
}

// Event is a log event: one line of a job's output (or a piece of a long
// one), without its newline.
type Event struct {
	Offset  int64 // where it starts in the log
	End     int64 // where the next event starts
	Time    int64 // unix milliseconds: when the server received it
	Message []byte
}

// Cursor reads a log's events forward from an offset, one chunk in memory
// at a time.
type Cursor struct {
	st    Store
	jobID string
	next  int64         // offset of the next chunk to load
	d     *decodedChunk // the loaded chunk (nil: none)
	base  int64         // its Offset
	pos   int           // position in d.data
	from  int64         // events starting before it are skipped
	done  bool
}

// NewCursor returns a cursor at the first event that starts at or after
// from (an event boundary, as the offsets of events are).
func (s *Service) NewCursor(jobID string, from int64) *Cursor {
	return &Cursor{st: s.cfg.Store, jobID: jobID, next: from, from: from}
}

// Next returns the next event; ok is false at the end of the stored events.
func (c *Cursor) Next(ctx context.Context) (Event, bool, error) {
	for {
		if c.d != nil && c.pos < len(c.d.data) {
			msg, n, _ := nextEvent(c.d.data[c.pos:], true)
			off := c.base + int64(c.pos)
			ev := Event{Offset: off, End: off + int64(n), Time: c.d.timeAt(int64(c.pos)), Message: msg}
			c.pos += n
			if ev.Offset < c.from {
				continue
			}
			return ev, true, nil
		}
		if c.done {
			return Event{}, false, nil
		}
		chunks, err := c.st.LogChunks(ctx, c.jobID, c.next, 1)
		if err != nil {
			return Event{}, false, err
		}
		if len(chunks) == 0 {
			c.d, c.done = nil, true
			continue
		}
		ch := chunks[0]
		d, err := decodeChunk(ch.Data, ch.Length, msOf(ch.First))
		if err != nil {
			return Event{}, false, fmt.Errorf("log of job %s: chunk %d: %w", c.jobID, ch.Seq, err)
		}
		c.d, c.base, c.pos, c.next = d, ch.Offset, 0, ch.Offset+ch.Length
	}
}

// EventsBefore returns up to limit events that end at or before the given
// offset, oldest first, stopping early once maxBytes of messages are
// gathered (at least one event is returned when there is one).
func (s *Service) EventsBefore(ctx context.Context, jobID string, before int64, limit, maxBytes int, keep func(Event) bool) ([]Event, error) {
	var (
		out   []Event // newest first while gathering
		bytes int
	)
	for before > 0 && len(out) < limit {
		chunks, err := s.cfg.Store.LogChunksBefore(ctx, jobID, before, 4)
		if err != nil {
			return nil, err
		}
		if len(chunks) == 0 {
			break
		}
		for _, ch := range chunks {
			d, err := decodeChunk(ch.Data, ch.Length, msOf(ch.First))
			if err != nil {
				return nil, fmt.Errorf("log of job %s: chunk %d: %w", jobID, ch.Seq, err)
			}
			var evs []Event
			for pos := 0; pos < len(d.data); {
				msg, n, _ := nextEvent(d.data[pos:], true)
				ev := Event{Offset: ch.Offset + int64(pos), End: ch.Offset + int64(pos+n), Time: d.timeAt(int64(pos)), Message: msg}
				pos += n
				if ev.End <= before && (keep == nil || keep(ev)) {
					evs = append(evs, ev)
				}
			}
			for i := len(evs) - 1; i >= 0; i-- {
				if len(out) >= limit || len(out) > 0 && bytes+len(evs[i].Message) > maxBytes {
					slicesReverse(out)
					return out, nil
				}
				out = append(out, evs[i])
				bytes += len(evs[i].Message)
			}
			before = ch.Offset
		}
	}
	slicesReverse(out)
	return out, nil
}

func slicesReverse(s []Event) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
}
