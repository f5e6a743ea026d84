package engine

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// Snapshot is a consistent view of a pipeline's runtime: its latest
// definition, the runtime document and every execution the runtime names.
type Snapshot struct {
	Declaration *wire.PipelineDeclaration
	Record      store.Pipeline
	Runtime     *Runtime
	Executions  map[string]*Execution
	// Active are the active executions, oldest first.
	Active []*Execution
}

// Snapshot reads a pipeline's runtime state in one transaction, so that
// stage holders, waiting executions and action states agree.
func (e *Engine) Snapshot(ctx context.Context, pipeline string) (*Snapshot, error) {
	var snap *Snapshot
	err := e.store.InPipeline(ctx, pipeline, func(tx store.PipelineTx) error {
		rec, err := tx.Pipeline(0)
		if err != nil {
			return err
		}
		decl, err := e.defs.DecodePipeline(rec)
		if err != nil {
			return err
		}
		s := &Snapshot{Declaration: decl, Record: rec, Runtime: &Runtime{}, Executions: map[string]*Execution{}}
		doc, err := tx.Runtime()
		if err != nil {
			return err
		}
		if doc != nil {
			if err := json.Unmarshal(doc, s.Runtime); err != nil {
				return err
			}
		}
		load := func(id string) error {
			if id == "" || s.Executions[id] != nil {
				return nil
			}
			rec, err := tx.Execution(id)
			if err != nil {
				return err
			}
			x, err := decodeExecution(rec)
			if err != nil {
				return err
			}
			s.Executions[id] = x
			return nil
		}
		// Active executions too: in PARALLEL mode several may wait on the
		// same action (an approval), and the state shows a pending one.
		active, err := tx.ActiveExecutions()
		if err != nil {
			return err
		}
		for _, a := range active {
			x, err := decodeExecution(a)
			if err != nil {
				return err
			}
			s.Executions[a.ID] = x
			s.Active = append(s.Active, x)
		}
		for _, slot := range s.Runtime.Stages {
			ids := append([]string{slot.Holder, slot.Latest}, slot.Waiting...)
			for _, id := range slot.LastAction {
				ids = append(ids, id)
			}
			for _, id := range ids {
				if err := load(id); err != nil {
					return err
				}
			}
		}
		snap = s
		return nil
	})
	return snap, err
}

func decodeExecution(rec store.Execution) (*Execution, error) {
	x := &Execution{}
	if err := json.Unmarshal(rec.Doc, x); err != nil {
		return nil, fmt.Errorf("decode execution %s: %w", rec.ID, err)
	}
	return x, nil
}

// Execution reads one execution.
func (e *Engine) Execution(ctx context.Context, pipeline, id string) (*Execution, error) {
	rec, err := e.store.GetExecution(ctx, pipeline, id)
	if err != nil {
		return nil, err
	}
	return decodeExecution(rec)
}

// Executions lists a pipeline's executions, newest first, before a sequence
// number (0: from the newest). It returns the Seq of each.
func (e *Engine) Executions(ctx context.Context, pipeline string, beforeSeq int64, limit int) ([]*Execution, []int64, error) {
	recs, err := e.store.ListExecutions(ctx, pipeline, beforeSeq, limit)
	if err != nil {
		return nil, nil, err
	}
	out := make([]*Execution, 0, len(recs))
	seqs := make([]int64, 0, len(recs))
	for _, r := range recs {
		x, err := decodeExecution(r)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, x)
		seqs = append(seqs, r.Seq)
	}
	return out, seqs, nil
}

// JobDoc decodes a job's document.
func DecodeJob(j store.Job) (*JobDoc, error) {
	var d JobDoc
	if err := json.Unmarshal(j.Doc, &d); err != nil {
		return nil, fmt.Errorf("decode job %s: %w", j.ID, err)
	}
	return &d, nil
}
