package pipelines

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/pipelined/pipelined/internal/wire"
)

// GetPipeline answers with the stored JSON when it can; that answer must be
// byte for byte what decoding and encoding would have produced.
func TestGetPipelineEncodedAnswerMatchesDecodedOne(t *testing.T) {
	s := testService(t)
	ctx := context.Background()
	b, err := os.ReadFile("../../docs/example-pipeline.json")
	if err != nil {
		t.Fatal(err)
	}
	var in wire.CreatePipelineInput
	if err := json.Unmarshal(b, &in); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreatePipeline(ctx, &in); err != nil {
		t.Fatal(err)
	}
	out, err := s.GetPipeline(ctx, &wire.GetPipelineInput{Name: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if !out.Pipeline.IsEncoded() {
		t.Fatal("a pipeline without secrets was decoded instead of passed through")
	}
	fast, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := s.store.GetPipeline(ctx, "hello", 0)
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := decodeDefinition(rec)
	if err != nil {
		t.Fatal(err)
	}
	out.Pipeline = decoded
	slow, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fast, slow) {
		t.Fatalf("encoded answer differs from the decoded one:\n%s\n%s", fast, slow)
	}
}
