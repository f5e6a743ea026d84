package caller

import (
	"context"
	"strings"
	"testing"

	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// The operations a worker key may call exist, and are the job protocol of
// its owner only.
func TestWorkerOperations(t *testing.T) {
	custom := &WorkerScope{ActionType: store.ActionTypeKey{Category: "Build", Owner: "Custom", Provider: "Tool", Version: "1"}}
	partner := &WorkerScope{ActionType: store.ActionTypeKey{Category: "Deploy", Owner: "ThirdParty", Provider: "P", Version: "1"}}
	runner := &WorkerScope{ActionType: RunnerType}
	other := &WorkerScope{ActionType: store.ActionTypeKey{Category: "Deploy", Owner: "AWS", Provider: "S3", Version: "1"}}
	n := 0
	for op := range wire.Operations {
		c, p := custom.MayCall(op), partner.MayCall(op)
		jobOp := strings.Contains(op, "Job") // PollForJobs, AcknowledgeJob, ...
		thirdParty := strings.Contains(op, "ThirdParty")
		if c && (!jobOp || thirdParty) || p && !thirdParty || c && p {
			t.Errorf("%s: Custom %v, ThirdParty %v", op, c, p)
		}
		if other.MayCall(op) {
			t.Errorf("a key of owner AWS may call %s", op)
		}
		if r := runner.MayCall(op); r != c {
			t.Errorf("%s: a runner's key (Commands) %v, a custom worker's %v: they speak the same job protocol", op, r, c)
		}
		if c || p {
			n++
		}
	}
	if n != 10 {
		t.Errorf("worker keys may call %d operations, want 10", n)
	}
	for owner, ops := range workerOperations {
		for op := range ops {
			if _, ok := wire.Operations[op]; !ok {
				t.Errorf("%s: %s is no operation", owner, op)
			}
		}
	}
}

func TestDeniedAndWorker(t *testing.T) {
	w := &WorkerScope{ActionType: store.ActionTypeKey{Category: "Build", Owner: "Custom", Provider: "Tool", Version: "1"}}
	c := Caller{AccessKeyID: "PLWKAAAAAAAAAAAAAAAA", ARN: "arn:aws:iam::1:user/pipelined-worker/PLWKAAAAAAAAAAAAAAAA", Worker: w}
	e := c.Denied("GetPipeline", "")
	want := "User: arn:aws:iam::1:user/pipelined-worker/PLWKAAAAAAAAAAAAAAAA is not authorized to perform: codepipeline:GetPipeline because worker keys may call only the job-protocol operations of action type Build/Custom/Tool/1"
	if e.Code != wire.ErrAccessDenied || e.Message != want {
		t.Fatalf("Denied = %s: %s", e.Code, e.Message)
	}
	ctx := context.Background()
	if _, ok := Worker(ctx); ok {
		t.Error("Worker of an empty context")
	}
	if _, ok := Worker(With(ctx, Caller{ARN: "root"})); ok {
		t.Error("Worker of root")
	}
	if got, ok := Worker(With(ctx, c)); !ok || got.Worker != w {
		t.Error("Worker of a worker caller")
	}
}
