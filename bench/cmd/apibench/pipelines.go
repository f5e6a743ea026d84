package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// seedPipelines is the size of the small store: reads are measured with
// this many pipelines stored, and it is the baseline of the latency ratios.
const seedPipelines = 10

// getName is the pipeline every GetPipeline asks for, the same in the small
// and the large store.
const getName = "bench-00003"

// seedName names the i-th stored pipeline. Zero-padded so that name order
// (the order ListPipelines pages in) is creation order.
func seedName(i int) string { return fmt.Sprintf("bench-%05d", i) }

// template is the example pipeline from docs/example-pipeline.json, from
// which every CreatePipeline and UpdatePipeline body is made.
type template struct {
	pipeline map[string]any
}

func loadTemplate(moduleRoot string) (*template, error) {
	path := filepath.Join(moduleRoot, "docs", "example-pipeline.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var in struct {
		Pipeline map[string]any `json:"pipeline"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if in.Pipeline == nil {
		return nil, fmt.Errorf("%s: no \"pipeline\" object", path)
	}
	return &template{pipeline: in.Pipeline}, nil
}

// declaration returns a deep copy of the template's pipeline (a JSON round
// trip, so that callers may change nested members) named name.
func (t *template) declaration(name string) map[string]any {
	b, _ := json.Marshal(t.pipeline) // decoded from JSON: cannot fail
	var p map[string]any
	_ = json.Unmarshal(b, &p)
	p["name"] = name
	return p
}

// createBody is a CreatePipeline body for a pipeline named name. roleArn
// replaces the template's role when not empty (moto needs a role that exists
// in its IAM).
func (t *template) createBody(name, roleArn string) []byte {
	p := t.declaration(name)
	if roleArn != "" {
		p["roleArn"] = roleArn
	}
	return mustJSON(map[string]any{"pipeline": p})
}

// updateBody is an UpdatePipeline body that changes the pipeline (the
// CustomData of its approval action, when it has one, carries seq) and
// sends the version the client last saw, as `get-pipeline` output would, so
// that the server checks for concurrent modification.
func (t *template) updateBody(name string, version, seq int) []byte {
	p := t.declaration(name)
	p["version"] = version
	setCustomData(p, fmt.Sprintf("Ship it? (update %d)", seq))
	return mustJSON(map[string]any{"pipeline": p})
}

// setCustomData sets CustomData in every action configuration that has it.
func setCustomData(p map[string]any, v string) {
	stages, _ := p["stages"].([]any)
	for _, s := range stages {
		stage, _ := s.(map[string]any)
		actions, _ := stage["actions"].([]any)
		for _, a := range actions {
			action, _ := a.(map[string]any)
			if cfg, ok := action["configuration"].(map[string]any); ok {
				if _, ok := cfg["CustomData"]; ok {
					cfg["CustomData"] = v
				}
			}
		}
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only ever called with maps decoded from JSON
	}
	return b
}

func getBody(name string) []byte { return mustJSON(map[string]string{"name": name}) }

func listBody(maxResults int, nextToken string) []byte {
	m := map[string]any{"maxResults": maxResults}
	if nextToken != "" {
		m["nextToken"] = nextToken
	}
	return mustJSON(m)
}

// createSeq creates pipelines from..to-1 (named by seedName) with conns
// concurrent workers and returns the CreatePipeline rate. The first failure
// stops the fill: a store that is not full would make the large-store
// numbers meaningless.
func createSeq(ctx context.Context, c *client, t *template, roleArn string, conns, from, to int) (float64, error) {
	if from >= to {
		return 0, nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		start = time.Now()
	)
	next.Store(int64(from))
	for range conns {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				if _, err := c.call(ctx, apiCall("CreatePipeline", t.createBody(seedName(i), roleArn))); err != nil {
					cancel(fmt.Errorf("CreatePipeline %s: %w", seedName(i), err))
					return
				}
			}
		})
	}
	wg.Wait()
	// The deferred cancel has not run yet: a cause here is a failed create or
	// the caller's cancellation.
	if err := context.Cause(ctx); err != nil {
		return 0, err
	}
	return float64(to-from) / time.Since(start).Seconds(), nil
}

// listToken pages through ListPipelines (pages of size) and returns the
// nextToken that starts page number page (0-based).
func listToken(ctx context.Context, c *client, size, page int) (string, error) {
	token := ""
	for i := 0; i < page; i++ {
		body, err := c.call(ctx, apiCall("ListPipelines", listBody(size, token)))
		if err != nil {
			return "", fmt.Errorf("ListPipelines page %d: %w", i, err)
		}
		var out struct {
			NextToken string `json:"nextToken"`
		}
		if err := json.Unmarshal(body, &out); err != nil {
			return "", fmt.Errorf("ListPipelines page %d: %w", i, err)
		}
		if out.NextToken == "" {
			return "", fmt.Errorf("ListPipelines ended after %d pages, wanted page %d", i+1, page)
		}
		token = out.NextToken
	}
	return token, nil
}
