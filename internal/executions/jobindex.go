package executions

import (
	"context"
	"sync"

	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// jobIndex remembers the pipeline and action type of the jobs this replica
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

type jobRef struct {
	pipeline string
	typ      store.ActionTypeKey
}

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
		x.jobs[j.ID] = jobRef{pipeline: j.Pipeline, typ: j.ActionType}
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
// not a custom one, and AccessDeniedException for a worker key's caller
// (operation: what it calls) when the job is of another action type.
func (s *Service) customJobPipeline(ctx context.Context, operation, id string) (string, error) {
	r, ok := s.index.get(id)
	if !ok {
		j, err := s.customJob(ctx, id)
		if err != nil {
			return "", err
		}
		r = jobRef{pipeline: j.Pipeline, typ: j.ActionType}
	} else if !pollable(r.typ) {
		return "", wire.Errorf(wire.ErrJobNotFound, "Job %s does not exist", id)
	}
	if err := workerMayWorkOn(ctx, operation, id, r.typ); err != nil {
		return "", err
	}
	return r.pipeline, nil
}
