package server_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/engine"
	"github.com/pipelined/pipelined/internal/server"
	"github.com/pipelined/pipelined/internal/server/servertest"
)

// delayExecutor is a test executor: it finishes its action through a timer
// it sets, with an output variable, to show that executors plug in behind
// engine.Executor with no special case in the engine.
type delayExecutor struct{ delay time.Duration }

func (delayExecutor) Name() string { return "test-delay" }

func (d delayExecutor) Start(s *engine.Step) error {
	return s.SetTimer("done", s.Now().Add(d.delay), map[string]string{"message": s.Run.Resolved["Command"]})
}

func (delayExecutor) Timer(s *engine.Step, data json.RawMessage) error {
	var m map[string]string
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	s.Succeed("waited", "", map[string]string{"Echo": m["message"]})
	return nil
}

func (delayExecutor) Abandon(s *engine.Step) error { return s.CancelTimer("done") }

func TestRegisteredExecutorRunsActions(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		delayKey := actiontypes.Key{Category: "Build", Owner: "Custom", Provider: "TestBuild", Version: "1"}
		_, c := engineServer(t, backend, func(cfg *server.Config) {
			cfg.Executors = map[actiontypes.Key]engine.Executor{delayKey: delayExecutor{delay: 30 * time.Millisecond}}
		})
		startWorker(t, c, nil) // runs the source; the build actions never reach it
		p := runPipeline("delays", "")
		p.Stages[1].Actions[0].Namespace = aws.String("Compiled")
		p.Stages[1].Actions[2].Configuration["Command"] = "after #{Compiled.Echo}"
		p.Stages = append(p.Stages[:2], p.Stages[3]) // no approval
		id := create(t, c, p)
		waitStatus(t, c, "delays", id, types.PipelineExecutionStatusSucceeded)
		acts := must(c.ListActionExecutions(context.Background(), &codepipeline.ListActionExecutionsInput{PipelineName: aws.String("delays"), Filter: &types.ActionExecutionFilter{PipelineExecutionId: aws.String(id)}}))
		for _, d := range acts.ActionExecutionDetails {
			switch aws.ToString(d.ActionName) {
			case "Compile":
				if d.Output.OutputVariables["Echo"] != "make "+id || aws.ToString(d.Output.ExecutionResult.ExternalExecutionSummary) != "waited" {
					t.Errorf("Compile output = %+v", d.Output)
				}
			case "Package":
				if d.Input.ResolvedConfiguration["Command"] != "after make "+id {
					t.Errorf("Package resolved = %v", d.Input.ResolvedConfiguration)
				}
			}
		}
	})
}
