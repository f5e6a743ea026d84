package executions

import (
	"context"
	"sync"

	"github.com/pipelined/pipelined/internal/caller"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// jobIndex remembers the pipeline and owner of the jobs this replica
// handed out, so that a worker's acknowledgement and result go straight to
// the pipeline's transaction instead of reading the whole job first (the
// transaction reads it again anyway, under the pipeline's lock, and checks
// everything that can change). A job's pipeline and action type never
// change, so the index cannot be stale across replicas; a job claimed on
// another replica is simply read from the store.
type jobIndex struct {
	mu   sync.Mutex
	jobs map[string]jobRef
}

type jobRef struct{ pipeline, owner string }

// maxIndexedJobs bounds the index: jobs that are never reported (a worker
// that died) would otherwise stay forever. When full it starts over, which
// costs one store read per job it forgot.
const maxIndexedJobs = 1 << 16

func (x *jobIndex) add(jobs []store.Job) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.jobs == nil || len(x.jobs)+len(jobs) > maxIndexedJobs {
		x.jobs = make(map[string]jobRef, len(jobs))
	}
	for _, j := range jobs {
		x.jobs[j.ID] = jobRef{pipeline: j.Pipeline, owner: j.ActionType.Owner}
	}
}

func (x *jobIndex) get(id string) (jobRef, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	r, ok := x.jobs[id]
	return r, ok
}

func (x *jobIndex) forget(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.jobs, id)
}

// customJobPipeline returns the pipeline of a custom job, from the index
// or the store; JobNotFoundException for a job that does not exist or is
// not a custom one. A worker key's caller (operation: what it calls) always
// reads the job, and gets AccessDeniedException for a job of another
// action type; root callers take the index.
func (s *Service) customJobPipeline(ctx context.Context, operation, id string) (string, error) {
	if _, ok := caller.Worker(ctx); ok {
		j, err := s.customJob(ctx, id)
		if err != nil {
			return "", err
		}
		if err := workerMayWork(ctx, operation, j); err != nil {
			return "", err
		}
		return j.Pipeline, nil
	}
	if r, ok := s.index.get(id); ok {
		if r.owner != "Custom" {
			return "", wire.Errorf(wire.ErrJobNotFound, "Job %s does not exist", id)
		}
		return r.pipeline, nil
	}
	j, err := s.customJob(ctx, id)
	if err != nil {
		return "", err
	}
	return j.Pipeline, nil
}
