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
