package storetest

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/store"
)

// The engine's benchmarks, one workload for every backend: each backend's
// tests call them on a new, empty store.
//
//	func BenchmarkInPipeline(b *testing.B) { storetest.BenchInPipeline(b, newStore(b)) }

// Document sizes of a realistic pipeline: its runtime, an execution of a
// few stages, a job.
var (
	benchRuntime   = []byte(`{"stages":{` + strings.Repeat(`"Stage":{"holder":"0f8fad5b-d9cb-469f-a165-70867728950e","waiting":[]},`, 10) + `"Last":{}},"disabled":{}}`)
	benchExecution = []byte(`{"stages":[` + strings.Repeat(`{"name":"Stage","status":"InProgress","actions":[{"name":"Action","status":"InProgress","attempt":1,"output":{"variables":{"k":"v"}}}]},`, 20) + `{}]}`)
	benchJob       = []byte(`{"data":{"actionConfiguration":{"configuration":{"ProjectName":"project"}},"inputArtifacts":[` + strings.Repeat(`{"name":"src","location":{"type":"S3","s3Location":{"bucketName":"bucket","objectKey":"key"}}},`, 4) + `{}]}}`)
)

const benchPipelines = 100

func benchPipeline(i int64) string { return fmt.Sprintf("pipeline-%03d", i%benchPipelines) }

// BenchInPipeline measures one engine transition: a transaction that reads
// the runtime, updates one execution and puts a new job, across 100
// pipelines. The parallel variant runs transitions of different pipelines
// at once (4 per core).
func BenchInPipeline(b *testing.B, st store.Store) {
	ctx := b.Context()
	for p := range int64(benchPipelines) {
		err := st.InPipeline(ctx, benchPipeline(p), func(tx store.PipelineTx) error {
			if err := tx.SetRuntime(benchRuntime); err != nil {
				return err
			}
			_, err := tx.PutExecution(benchExecutionOf(p))
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	var seq atomic.Int64
	transition := func() error {
		i := seq.Add(1)
		return st.InPipeline(ctx, benchPipeline(i), func(tx store.PipelineTx) error {
			if _, err := tx.Runtime(); err != nil {
				return err
			}
			e := benchExecutionOf(i)
			e.Updated = time.Now()
			if _, err := tx.PutExecution(e); err != nil {
				return err
			}
			return tx.PutJob(store.Job{
				ID:          fmt.Sprintf("job-%d", i),
				ActionType:  store.ActionTypeKey{Category: "Build", Owner: "Custom", Provider: "Tool", Version: "1"},
				Pipeline:    e.Pipeline,
				ExecutionID: e.ID,
				Status:      store.JobQueued,
				Doc:         benchJob,
				Created:     e.Updated,
				Updated:     e.Updated,
			})
		})
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := transition(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := transition(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// benchExecutionOf is the one execution of pipeline i.
func benchExecutionOf(i int64) store.Execution {
	return store.Execution{
		ID:       fmt.Sprintf("execution-%03d", i%benchPipelines),
		Pipeline: benchPipeline(i),
		Status:   "InProgress",
		Active:   true,
		Doc:      benchExecution,
		Created:  time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		Updated:  time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

// BenchClaimJobs measures ClaimJobs on a table of 11,000 jobs: of the
// claimed action type 1,000 claimable and 9,000 finished, and 1,000
// claimable of another type. The acknowledgement deadline given is in the
// past, so claimed jobs stay claimable and the table does not drain: every
// claim dispatches the oldest jobs again.
func BenchClaimJobs(b *testing.B, st store.Store) {
	ctx := b.Context()
	key := store.ActionTypeKey{Category: "Build", Owner: "Custom", Provider: "Tool", Version: "1"}
	other := key
	other.Provider = "Other"
	t0 := time.Now().Add(-time.Hour)
	n := 0
	put := func(k store.ActionTypeKey, status string, count int) {
		for start := 0; start < count; start += 500 {
			err := st.InPipeline(ctx, benchPipeline(int64(start/500)), func(tx store.PipelineTx) error {
				for range min(500, count-start) {
					n++
					if err := tx.PutJob(store.Job{
						ID:         fmt.Sprintf("job-%06d", n),
						ActionType: k,
						Status:     status,
						Doc:        benchJob,
						Created:    t0.Add(time.Duration(n) * time.Millisecond),
						Updated:    t0,
					}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	put(key, "Succeeded", 4500)
	put(key, store.JobQueued, 1000)
	put(other, store.JobQueued, 1000)
	put(key, "Succeeded", 4500)

	var nonce atomic.Int64
	newNonce := func(jobID string) (string, string) {
		n := fmt.Sprintf("nonce-%d", nonce.Add(1))
		return n, "hash-" + n
	}
	expired := time.Now().Add(-time.Minute)
	for _, max := range []int{1, 10} {
		b.Run(fmt.Sprintf("max=%d", max), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				jobs, err := st.ClaimJobs(ctx, key, nil, max, newNonce, expired)
				if err != nil {
					b.Fatal(err)
				}
				if len(jobs) != max {
					b.Fatalf("claimed %d jobs, want %d", len(jobs), max)
				}
			}
		})
	}
	b.Run("max=1/parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := st.ClaimJobs(ctx, key, nil, 1, newNonce, expired); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
