package engine

import (
	"fmt"
	"sync"

	"github.com/pipelined/pipelined/internal/wire"
)

// advance drives an execution as far as it can go without waiting for an
// event: into stages it may enter, through runOrder groups whose actions
// finished, to its end. It is called after every change to an execution.
func (t *txn) advance(x *Execution) error {
	for range 10_000 { // a bound, not a budget: each turn makes progress
		if !x.Active() {
			return nil
		}
		if x.Stage >= len(x.Stages) {
			t.finish(x, StatusSucceeded, "")
			return nil
		}
		if x.Waiting {
			entered, err := t.tryEnter(x)
			if err != nil || !entered {
				return err
			}
			continue
		}
		decl, err := t.declOf(x)
		if err != nil {
			return t.orphan(x, err)
		}
		st := &x.Stages[x.Stage]
		sd := &decl.Stages[x.Stage]
		if anyRun(st, StatusInProgress) {
			return nil // waiting for a job result, an approval or a timer
		}
		if x.Status == StatusStopping {
			if err := t.cancelConditions(x, st); err != nil {
				return err
			}
			st.Status = StatusStopped
			t.finish(x, StatusStopped, x.StopReason)
			return t.release(x, st.Name)
		}
		// Stage conditions (conditions.go); rollback executions skip them.
		if x.Type != TypeRollback && sd.BeforeEntry != nil && hasRules(sd.BeforeEntry.Conditions) && len(st.Actions) == 0 {
			out, err := t.gate(x, st, KindBeforeEntry, sd.BeforeEntry.Conditions)
			if err != nil || out == gateWait {
				return err
			}
			if out == gateFail {
				if beforeEntryResult(sd) == wire.ResultSkip {
					st.Status = StatusSkipped
					if done, err := t.leaveStage(x, st); err != nil || done {
						return err
					}
					continue
				}
				st.Status = StatusFailed
				t.finish(x, StatusFailed, fmt.Sprintf("Stage '%s' did not meet its entry condition: %s", st.Name, conditionSummary(st, KindBeforeEntry)))
				return t.release(x, st.Name)
			}
		}
		if anyRun(st, StatusFailed) || anyRun(st, StatusAbandoned) {
			what, note := failStands, ""
			if !anyRun(st, StatusAbandoned) {
				if what, note, err = t.onFailure(x, st, sd); err != nil || what == failWait {
					return err
				}
				if what == failRetried {
					continue
				}
			}
			st.Status = StatusFailed
			summary := failureSummary(st) + note
			if what == failRollback {
				why, err := t.queueRollback(x, st.Name)
				if err != nil {
					return err
				}
				if why != "" {
					summary = joinSummary(summary, "no automatic rollback: "+why)
				}
			}
			t.finish(x, StatusFailed, summary)
			return t.release(x, st.Name)
		}
		if group, ok := nextGroup(st, sd); ok {
			if err := t.startGroup(x, st, sd, group); err != nil {
				return err
			}
			continue
		}
		// Every action of the stage succeeded: the onSuccess condition decides.
		if x.Type != TypeRollback && sd.OnSuccess != nil && hasRules(sd.OnSuccess.Conditions) {
			out, err := t.gate(x, st, KindOnSuccess, sd.OnSuccess.Conditions)
			if err != nil || out == gateWait {
				return err
			}
			if out == gateFail {
				st.Status = StatusFailed
				summary := fmt.Sprintf("Stage '%s' did not meet its success condition: %s", st.Name, conditionSummary(st, KindOnSuccess))
				if onSuccessResult(sd) == wire.ResultRollback {
					why, err := t.queueRollback(x, st.Name)
					if err != nil {
						return err
					}
					if why != "" {
						summary = joinSummary(summary, "no automatic rollback: "+why)
					}
				}
				t.finish(x, StatusFailed, summary)
				return t.release(x, st.Name)
			}
		}
		st.Status = StatusSucceeded
		t.runtime().slot(st.Name).Succeeded = x.ID
		if done, err := t.leaveStage(x, st); err != nil || done {
			return err
		}
	}
	return fmt.Errorf("engine: execution %s did not settle", x.ID)
}

// leaveStage releases a stage the execution succeeded in or skipped and
// brings it to the next one. done is true when the execution settled
// (finished, or waiting at the next stage's inbound).
func (t *txn) leaveStage(x *Execution, st *StageRun) (done bool, err error) {
	t.touch(x)
	if err := t.release(x, st.Name); err != nil {
		return true, err
	}
	if x.Only != "" {
		t.finish(x, StatusSucceeded, "")
		return true, nil
	}
	x.Stage++
	if x.Stage >= len(x.Stages) {
		t.finish(x, StatusSucceeded, "")
		return true, nil
	}
	latest, err := t.latestVersion()
	if err != nil {
		return true, t.orphan(x, err)
	}
	if latest != x.PipelineVersion {
		t.finish(x, StatusCancelled, fmt.Sprintf("The pipeline was updated to version %d before this execution (version %d) could complete", latest, x.PipelineVersion))
		return true, nil
	}
	return false, t.arrive(x)
}

// orphan ends an execution whose pipeline is gone.
func (t *txn) orphan(x *Execution, err error) error {
	if err == ErrPipelineGone {
		t.finish(x, StatusCancelled, "The pipeline was deleted")
		return nil
	}
	return err
}

func anyRun(st *StageRun, status string) bool {
	for i := range st.Actions {
		if st.Actions[i].Status == status {
			return true
		}
	}
	return false
}

func failureSummary(st *StageRun) string {
	for _, a := range st.Actions {
		if a.Status == StatusFailed || a.Status == StatusAbandoned {
			msg := a.ErrorMessage
			if msg == "" {
				msg = a.Summary
			}
			return fmt.Sprintf("Action '%s' in stage '%s' %s: %s", a.Name, st.Name, a.Status, msg)
		}
	}
	return ""
}

// nextGroup is the smallest runOrder among the stage's actions that have
// not succeeded in this stage run.
func nextGroup(st *StageRun, sd *wire.StageDeclaration) (int, bool) {
	best, found := 0, false
	for _, ad := range sd.Actions {
		if run := findRun(st, ad.Name); run != nil && run.Status == StatusSucceeded {
			continue
		}
		ro := runOrder(&ad)
		if !found || ro < best {
			best, found = ro, true
		}
	}
	return best, found
}

func runOrder(ad *wire.ActionDeclaration) int {
	if ad.RunOrder == nil {
		return 1
	}
	return *ad.RunOrder
}

func findRun(st *StageRun, action string) *ActionRun {
	for i := range st.Actions {
		if st.Actions[i].Name == action {
			return &st.Actions[i]
		}
	}
	return nil
}

// arrive brings an execution to the inbound transition of its current
// stage: it enters at once if it may, otherwise it waits there. In
// SUPERSEDED mode a newer arrival supersedes the execution already waiting.
func (t *txn) arrive(x *Execution) error {
	x.Waiting = true
	t.touch(x)
	slot := t.runtime().slot(x.Stages[x.Stage].Name)
	if len(slot.Waiting) == 0 && t.mayEnter(x, slot) {
		return t.enter(x, slot)
	}
	if x.Mode == ModeSuperseded {
		for _, id := range slot.Waiting {
			w, err := t.exec(id)
			if err != nil {
				return err
			}
			t.finish(w, StatusSuperseded, fmt.Sprintf("Superseded by execution %s while waiting to enter stage '%s'", x.ID, w.Stages[w.Stage].Name))
		}
		slot.Waiting = nil
	}
	slot.Waiting = append(slot.Waiting, x.ID)
	return nil
}

func (t *txn) mayEnter(x *Execution, slot *StageSlot) bool {
	if slot.Disabled != nil {
		return false
	}
	return x.Mode == ModeParallel || slot.Holder == "" || slot.Holder == x.ID
}

// tryEnter lets a waiting execution in when its turn has come.
func (t *txn) tryEnter(x *Execution) (bool, error) {
	slot := t.runtime().slot(x.Stages[x.Stage].Name)
	if !t.mayEnter(x, slot) || (len(slot.Waiting) > 0 && slot.Waiting[0] != x.ID) {
		return false, nil
	}
	return true, t.enter(x, slot)
}

// enter puts an execution into its current stage.
func (t *txn) enter(x *Execution, slot *StageSlot) error {
	slot.Waiting = remove(slot.Waiting, x.ID)
	if x.Mode != ModeParallel {
		slot.Holder = x.ID
	}
	slot.Latest = x.ID
	x.Waiting = false
	st := &x.Stages[x.Stage]
	st.Status = StatusInProgress
	st.Attempt++
	st.Actions = nil
	archiveConditions(x, st, "")
	t.touch(x)
	return nil
}

// release frees a stage an execution held and lets the next waiting
// execution(s) in.
func (t *txn) release(x *Execution, stage string) error {
	slot := t.runtime().slot(stage)
	if slot.Holder == x.ID {
		slot.Holder = ""
	}
	return t.admit(stage)
}

// admit lets waiting executions into a stage, in arrival order, as far as
// the stage allows (one in SUPERSEDED and QUEUED modes, all in PARALLEL).
func (t *txn) admit(stage string) error {
	slot := t.runtime().slot(stage)
	for len(slot.Waiting) > 0 && slot.Disabled == nil {
		w, err := t.exec(slot.Waiting[0])
		if err != nil {
			return err
		}
		if !w.Active() || !w.Waiting {
			slot.Waiting = slot.Waiting[1:] // stale entry
			continue
		}
		if !t.mayEnter(w, slot) {
			return nil
		}
		if err := t.enter(w, slot); err != nil {
			return err
		}
		if err := t.advance(w); err != nil {
			return err
		}
	}
	return nil
}

// finish ends an execution.
func (t *txn) finish(x *Execution, status, summary string) {
	if x.Active() && t.runtime().Active > 0 {
		t.runtime().Active--
	}
	if x.Waiting && x.Stage < len(x.Stages) {
		slot := t.runtime().slot(x.Stages[x.Stage].Name)
		slot.Waiting = remove(slot.Waiting, x.ID)
		x.Waiting = false
	}
	x.Status = status
	x.StatusSummary = summary
	t.touch(x)
	t.finished = append(t.finished, x.ID)
}

func remove(ids []string, id string) []string {
	out := ids[:0]
	for _, v := range ids {
		if v != id {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// signals lets code in this process wait for executions to finish (tests
// and benchmarks; other replicas' executions are not seen).
type signals struct {
	mu      sync.Mutex
	waiters map[string][]chan struct{}
}

func (s *signals) wait(id string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiters == nil {
		s.waiters = map[string][]chan struct{}{}
	}
	ch := make(chan struct{})
	s.waiters[id] = append(s.waiters[id], ch)
	return ch
}

func (s *signals) fire(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.waiters[id] {
		close(ch)
	}
	delete(s.waiters, id)
}
