package pipelines

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/pipelined/pipelined/internal/secrets"
	"github.com/pipelined/pipelined/internal/store/sqlite"
	"github.com/pipelined/pipelined/internal/wire"
)

func testService(t testing.TB) *Service {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "fuzz.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sealer, _ := secrets.New(bytes.Repeat([]byte{1}, secrets.KeySize))
	return New(Config{Store: st, Sealer: sealer, Region: "us-east-1", AccountID: "123456789012"})
}

// FuzzValidatePipeline runs arbitrary pipeline declarations through the
// model's validators and the service's structural rules. No input may
// panic; every refusal is an API error.
func FuzzValidatePipeline(f *testing.F) {
	example, err := os.ReadFile("../../docs/example-pipeline.json")
	if err != nil {
		f.Fatal(err)
	}
	var in struct{ Pipeline json.RawMessage }
	if err := json.Unmarshal(example, &in); err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(in.Pipeline))
	f.Add([]byte(`{"name":"p","roleArn":"arn:aws:iam::123456789012:role/r","artifactStore":{"type":"S3","location":"b"},"stages":[{"name":"a","actions":[]},{"name":"a","actions":[{"name":"x","actionTypeId":{"category":"Build","owner":"Custom","provider":"P","version":"1"},"inputArtifacts":[{"name":"Q"}]}]}]}`))
	f.Add([]byte(`{"name":"p","roleArn":"arn:aws:iam::123456789012:role/r","artifactStores":{"us-east-1":{"type":"S3","location":"b"}},"pipelineType":"V1","variables":[{"name":"v"},{"name":"v"}],"stages":[]}`))
	f.Add([]byte(`{"stages":[{"actions":[{"runOrder":5,"namespace":"App","outputArtifacts":[{"name":"App"}]}]}]}`))
	s := testService(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		var p wire.PipelineDeclaration
		if json.Unmarshal(body, &p) != nil {
			return
		}
		var v wire.Validator
		p.Validate(&v, "pipeline")
		if v.Err() != nil {
			return // refused by the model's constraints: the service never sees it
		}
		normalize(&p)
		if err := s.validate(context.Background(), &p); err != nil {
			if _, ok := wire.AsError(err); !ok {
				t.Fatalf("validate returned a non-API error %T: %v", err, err)
			}
		}
	})
}

func TestExamplePipelineIsValid(t *testing.T) {
	b, err := os.ReadFile("../../docs/example-pipeline.json")
	if err != nil {
		t.Fatal(err)
	}
	var in wire.CreatePipelineInput
	if err := json.Unmarshal(b, &in); err != nil {
		t.Fatal(err)
	}
	if err := wire.Validate(&in); err != nil {
		t.Fatal(err)
	}
	out, err := testService(t).CreatePipeline(context.Background(), &in)
	if err != nil {
		t.Fatalf("docs/example-pipeline.json is refused: %v", err)
	}
	if *out.Pipeline.Version != 1 {
		t.Fatalf("version %d", *out.Pipeline.Version)
	}
}
