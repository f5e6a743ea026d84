package awsjson_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/pipelined/pipelined/internal/awsjson"
	"github.com/pipelined/pipelined/internal/caller"
	"github.com/pipelined/pipelined/internal/sigv4"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// recordingAPI records which operations ran and who called them.
type recordingAPI struct {
	wire.Unimplemented
	calls []string
	who   []caller.Caller
}

func (a *recordingAPI) record(ctx context.Context, op string) {
	c, _ := caller.From(ctx)
	a.calls = append(a.calls, op)
	a.who = append(a.who, c)
}

func (a *recordingAPI) GetPipeline(ctx context.Context, _ *wire.GetPipelineInput) (*wire.GetPipelineOutput, error) {
	a.record(ctx, "GetPipeline")
	return &wire.GetPipelineOutput{}, nil
}

func (a *recordingAPI) PollForJobs(ctx context.Context, _ *wire.PollForJobsInput) (*wire.PollForJobsOutput, error) {
	a.record(ctx, "PollForJobs")
	return &wire.PollForJobsOutput{}, nil
}

func (a *recordingAPI) PollForThirdPartyJobs(ctx context.Context, _ *wire.PollForThirdPartyJobsInput) (*wire.PollForThirdPartyJobsOutput, error) {
	a.record(ctx, "PollForThirdPartyJobs")
	return &wire.PollForThirdPartyJobsOutput{}, nil
}

const (
	rootKey   = "PLAKROOT000000000000"
	workerKey = "PLWKAAAAAAAAAAAAAAAA"
	oddKey    = "PLWKBBBBBBBBBBBBBBBB"
	secret    = "secret-secret-secret-secret-secret-0000"
)

var customScope = &caller.WorkerScope{ActionType: store.ActionTypeKey{Category: "Build", Owner: "Custom", Provider: "Tool", Version: "1"}}

func lookup(_ context.Context, id string) (sigv4.Credential, error) {
	switch id {
	case rootKey:
		return sigv4.Credential{AccessKeyID: id, SecretAccessKey: secret, Principal: "arn:aws:iam::1:root"}, nil
	case workerKey:
		return sigv4.Credential{AccessKeyID: id, SecretAccessKey: secret, Principal: "arn:aws:iam::1:user/pipelined-worker/" + id, Scope: customScope}, nil
	case oddKey: // a scope this layer does not know
		return sigv4.Credential{AccessKeyID: id, SecretAccessKey: secret, Principal: "x", Scope: "everything"}, nil
	}
	return sigv4.Credential{}, sigv4.ErrUnknownAccessKey
}

func call(t *testing.T, h http.Handler, akid, op, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "http://pipelined.test/", strings.NewReader(body))
	req.Header.Set("X-Amz-Target", wire.TargetPrefix+"."+op)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	sum := sha256.Sum256([]byte(body))
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret}, req, hash, "codepipeline", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out
}

// TestWorkerCallerIsConfined: a credential with a worker scope reaches the
// job-protocol operations of its owner only; every other operation is
// AccessDeniedException before it runs. Root reaches everything.
func TestWorkerCallerIsConfined(t *testing.T) {
	api := &recordingAPI{}
	h := awsjson.New(api, awsjson.SigV4{Verifier: &sigv4.Verifier{Region: "us-east-1", Service: "codepipeline", Lookup: lookup}}, awsjson.Options{})
	poll := `{"actionTypeId":{"category":"Build","owner":"Custom","provider":"Tool","version":"1"}}`

	status, out := call(t, h, workerKey, "GetPipeline", `{"name":"p"}`)
	msg, _ := out["message"].(string)
	if status != http.StatusForbidden || out["__type"] != wire.ErrAccessDenied ||
		msg != "User: arn:aws:iam::1:user/pipelined-worker/"+workerKey+" is not authorized to perform: codepipeline:GetPipeline because worker keys may call only the job-protocol operations of action type Build/Custom/Tool/1" {
		t.Fatalf("worker GetPipeline = %d %v", status, out)
	}
	status, out = call(t, h, workerKey, "PollForThirdPartyJobs", poll)
	if status != http.StatusForbidden || out["__type"] != wire.ErrAccessDenied {
		t.Fatalf("Custom worker PollForThirdPartyJobs = %d %v", status, out)
	}
	// Unknown operations stay unknown.
	status, out = call(t, h, workerKey, "LaunchRockets", `{}`)
	if status != http.StatusBadRequest || out["__type"] != wire.ErrUnknownOperation {
		t.Fatalf("worker LaunchRockets = %d %v", status, out)
	}
	if len(api.calls) != 0 {
		t.Fatalf("refused calls ran: %v", api.calls)
	}

	if status, out = call(t, h, workerKey, "PollForJobs", poll); status != http.StatusOK {
		t.Fatalf("worker PollForJobs = %d %v", status, out)
	}
	if len(api.calls) != 1 || api.who[0].Worker != customScope || api.who[0].AccessKeyID != workerKey {
		t.Fatalf("the operation saw %v %+v", api.calls, api.who)
	}

	for _, op := range []string{"GetPipeline", "PollForJobs", "PollForThirdPartyJobs"} {
		body := `{"name":"p"}`
		if op != "GetPipeline" {
			body = poll
		}
		if status, out := call(t, h, rootKey, op, body); status != http.StatusOK {
			t.Fatalf("root %s = %d %v", op, status, out)
		}
	}
	if len(api.calls) != 4 || api.who[1].Worker != nil {
		t.Fatalf("root calls: %v %+v", api.calls, api.who)
	}

	// A scope of a type this layer cannot enforce is an internal failure,
	// never root's rights.
	if status, out = call(t, h, oddKey, "GetPipeline", `{"name":"p"}`); status != http.StatusInternalServerError {
		t.Fatalf("unknown scope = %d %v", status, out)
	}
	if len(api.calls) != 4 {
		t.Fatalf("calls: %v", api.calls)
	}
}
