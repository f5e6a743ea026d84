package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// actionTypeID is an actionTypeId as the wire has it.
type actionTypeID struct {
	Category string `json:"category"`
	Owner    string `json:"owner"`
	Provider string `json:"provider"`
	Version  string `json:"version"`
}

// The custom action types the engine suite's pipelines are made of. Their
// jobs are done by the workers in this process, which report success at
// once: the actions take no time, so what an execution takes is
// pipelined's (and the HTTP round trips').
var (
	sourceType = actionTypeID{Category: "Source", Owner: "Custom", Provider: "Instant", Version: "1"}
	buildType  = actionTypeID{Category: "Build", Owner: "Custom", Provider: "Instant", Version: "1"}
	jobTypes   = []actionTypeID{sourceType, buildType}
)

// registerActionTypes creates the two custom action types. Creating the
// same definition again is accepted, so every phase may call it.
func registerActionTypes(ctx context.Context, c *client) error {
	for _, t := range []struct {
		typ     actionTypeID
		inputs  [2]int
		outputs [2]int
	}{
		{sourceType, [2]int{0, 0}, [2]int{1, 1}}, // a source makes the pipeline's first artifact
		{buildType, [2]int{0, 1}, [2]int{0, 1}},
	} {
		body := mustJSON(map[string]any{
			"category": t.typ.Category, "provider": t.typ.Provider, "version": t.typ.Version,
			"inputArtifactDetails":  map[string]int{"minimumCount": t.inputs[0], "maximumCount": t.inputs[1]},
			"outputArtifactDetails": map[string]int{"minimumCount": t.outputs[0], "maximumCount": t.outputs[1]},
		})
		if _, err := c.call(ctx, apiCall("CreateCustomActionType", body)); err != nil {
			return fmt.Errorf("CreateCustomActionType %s/%s: %w", t.typ.Category, t.typ.Provider, err)
		}
	}
	return nil
}

// lastStage is the name of the last stage of every engine-suite pipeline:
// the success of its (one) action ends the execution, in the same
// transaction, so a worker that reports it knows the execution is done.
const lastStage = "Last"

// enginePipeline is the CreatePipeline body of a pipeline of stages
// stages, one action each: a custom source, then custom builds, each
// taking the previous action's output artifact and making the next, so
// that the engine records and hands on an artifact at every step. parallel
// makes it a V2 pipeline in PARALLEL execution mode (otherwise it is V1,
// SUPERSEDED, the defaults).
func enginePipeline(name string, stages int, parallel bool) []byte {
	artifact := func(i int) []map[string]string { return []map[string]string{{"name": fmt.Sprintf("A%02d", i)}} }
	list := []any{map[string]any{
		"name": "Source",
		"actions": []any{map[string]any{
			"name": "Fetch", "actionTypeId": sourceType, "outputArtifacts": artifact(1),
		}},
	}}
	for i := 2; i <= stages; i++ {
		name := fmt.Sprintf("Build%02d", i)
		if i == stages {
			name = lastStage
		}
		list = append(list, map[string]any{
			"name": name,
			"actions": []any{map[string]any{
				"name": "Build", "actionTypeId": buildType,
				"inputArtifacts": artifact(i - 1), "outputArtifacts": artifact(i),
			}},
		})
	}
	p := map[string]any{
		"name":          name,
		"roleArn":       "arn:aws:iam::000000000000:role/pipelined",
		"artifactStore": map[string]string{"type": "S3", "location": "artifacts"},
		"stages":        list,
	}
	if parallel {
		p["pipelineType"] = "V2"
		p["executionMode"] = "PARALLEL"
	}
	return mustJSON(map[string]any{"pipeline": p})
}

func startBody(pipeline string) []byte { return mustJSON(map[string]string{"name": pipeline}) }

// executionID reads the id from a StartPipelineExecution response.
func executionID(body []byte) (string, error) {
	var out struct {
		ID string `json:"pipelineExecutionId"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return "", fmt.Errorf("decode StartPipelineExecution: %w", err)
	}
	if out.ID == "" {
		return "", fmt.Errorf("StartPipelineExecution answered no pipelineExecutionId: %s", body)
	}
	return out.ID, nil
}

// statusCount is how many executions of a pipeline are in each status.
type statusCount map[string]int

func (s statusCount) total() int {
	n := 0
	for _, v := range s {
		n += v
	}
	return n
}

func (s statusCount) String() string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", s[k], k)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// listExecutions pages through ListPipelineExecutions (pages of 100, the
// most it takes) and counts the executions by status.
func listExecutions(ctx context.Context, c *client, pipeline string) (statusCount, error) {
	counts := statusCount{}
	token := ""
	for page := 0; ; page++ {
		req := map[string]any{"pipelineName": pipeline, "maxResults": 100}
		if token != "" {
			req["nextToken"] = token
		}
		body, err := c.call(ctx, apiCall("ListPipelineExecutions", mustJSON(req)))
		if err != nil {
			return nil, fmt.Errorf("ListPipelineExecutions page %d: %w", page, err)
		}
		var out struct {
			Summaries []struct {
				Status string `json:"status"`
			} `json:"pipelineExecutionSummaries"`
			NextToken string `json:"nextToken"`
		}
		if err := json.Unmarshal(body, &out); err != nil {
			return nil, fmt.Errorf("decode ListPipelineExecutions: %w", err)
		}
		for _, s := range out.Summaries {
			counts[s.Status]++
		}
		if out.NextToken == "" {
			return counts, nil
		}
		token = out.NextToken
	}
}

// waitSucceeded polls ListPipelineExecutions until want executions of the
// pipeline exist and all have Succeeded, and returns the last count. It
// fails at once when one ended otherwise (Failed, Stopped, ...), since it
// would never succeed, and when timeout passes.
func waitSucceeded(ctx context.Context, c *client, pipeline string, want int, timeout time.Duration) (statusCount, error) {
	deadline := time.Now().Add(timeout)
	for {
		counts, err := listExecutions(ctx, c, pipeline)
		if err != nil {
			return counts, err
		}
		if counts.total() >= want && counts["Succeeded"] == counts.total() {
			return counts, nil
		}
		for status, n := range counts {
			if status != "Succeeded" && status != "InProgress" && n > 0 {
				return counts, fmt.Errorf("pipeline %s: executions ended otherwise than Succeeded: %s", pipeline, counts)
			}
		}
		if time.Now().After(deadline) {
			return counts, fmt.Errorf("pipeline %s: not all of %d executions Succeeded after %s: %s", pipeline, want, timeout, counts)
		}
		select {
		case <-ctx.Done():
			return counts, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
