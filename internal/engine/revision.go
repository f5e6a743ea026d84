package engine

import (
	"context"
	"errors"

	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// PutActionRevision records a new revision of a source action, as a
// source's own change detection would: unless it is the revision the
// action last ran with, an execution starts with the action pinned to it
// (trigger PutActionRevision, detail by). It returns the execution and
// whether the revision was new.
func (e *Engine) PutActionRevision(ctx context.Context, pipeline, stage, action, revision, by string) (string, bool, error) {
	var id string
	isNew := false
	err := e.transact(ctx, pipeline, func(t *txn) error {
		decl, err := t.def(0)
		if err != nil {
			return err
		}
		si := findStage(decl, stage)
		if si < 0 {
			return wire.Errorf(wire.ErrStageNotFound, "Stage '%s' does not exist in pipeline '%s'", stage, pipeline)
		}
		if findAction(decl, stage, action) == nil {
			return wire.Errorf(wire.ErrActionNotFound, "Action '%s' does not exist in stage '%s' of pipeline '%s'", action, stage, pipeline)
		}
		if si != 0 || !isSourceAction(decl, action) {
			return wire.Errorf(wire.ErrValidation, "Action '%s' in stage '%s' is not a source action; only source actions take revisions", action, stage)
		}
		if cur, err := t.currentRevision(stage, action); err != nil {
			return err
		} else if cur == revision {
			return nil
		}
		isNew = true
		id, err = t.start(StartRequest{
			Pipeline: pipeline, SourceOverrides: map[string]string{action: revision},
			TriggerType: string(wire.TriggerTypePutActionRevision), TriggerDetail: by,
		})
		return err
	})
	return id, isNew, err
}

// currentRevision is the revision a source action last ran (or was
// pinned) with, "" when it never ran.
func (t *txn) currentRevision(stage, action string) (string, error) {
	last := t.runtime().slot(stage).LastAction[action]
	if last == "" {
		return "", nil
	}
	x, err := t.exec(last)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if r, ok := x.SourceOverrides[action]; ok {
		return r, nil
	}
	for _, st := range x.Stages {
		if st.Name != stage {
			continue
		}
		for _, run := range st.Actions {
			if run.Name == action {
				return run.Revision, nil
			}
		}
	}
	return "", nil
}
