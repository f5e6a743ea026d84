package runner

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/pipelined/pipelined/internal/identity"
	"github.com/pipelined/pipelined/internal/wire"
)

// Remote is pipelined seen from a runner on another machine: the job
// protocol over the CodePipeline API (AWS JSON 1.1, SigV4 with the
// runner's worker key), and the heartbeat and log endpoints, which take
// the job's id and nonce. It satisfies Server and LogSink.
type Remote struct {
	URL         string // the server's URL
	Region      string
	Credentials aws.CredentialsProvider
	HTTP        *http.Client
	signer      *v4.Signer
}

// NewRemote returns a client of the server at serverURL.
func NewRemote(serverURL, region string, creds aws.CredentialsProvider, hc *http.Client) *Remote {
	if hc == nil {
		hc = &http.Client{}
	}
	return &Remote{URL: strings.TrimRight(serverURL, "/"), Region: region, Credentials: creds, HTTP: hc, signer: v4.NewSigner()}
}

// maxAnswer bounds what the runner reads of an answer.
const maxAnswer = 16 << 20

// call sends one CodePipeline operation and decodes its answer into out.
func (r *Remote) call(ctx context.Context, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL+"/", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "CodePipeline_20150709."+op)
	creds, err := r.Credentials.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("runner credentials: %w", err)
	}
	sum := sha256.Sum256(body)
	if err := r.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "codepipeline", r.Region, time.Now()); err != nil {
		return err
	}
	resp, err := r.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(raw, &e)
		code := e.Type
		if i := strings.LastIndex(code, "#"); i >= 0 {
			code = code[i+1:]
		}
		if code == "" {
			return fmt.Errorf("%s: HTTP %d", op, resp.StatusCode)
		}
		return &wire.Error{Code: code, Message: e.Message}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

func (r *Remote) PollForJobs(ctx context.Context, in *wire.PollForJobsInput) (*wire.PollForJobsOutput, error) {
	var out wire.PollForJobsOutput
	return &out, r.call(ctx, "PollForJobs", in, &out)
}

func (r *Remote) AcknowledgeJob(ctx context.Context, in *wire.AcknowledgeJobInput) (*wire.AcknowledgeJobOutput, error) {
	var out wire.AcknowledgeJobOutput
	return &out, r.call(ctx, "AcknowledgeJob", in, &out)
}

func (r *Remote) GetJobDetails(ctx context.Context, in *wire.GetJobDetailsInput) (*wire.GetJobDetailsOutput, error) {
	var out wire.GetJobDetailsOutput
	return &out, r.call(ctx, "GetJobDetails", in, &out)
}

func (r *Remote) PutJobSuccessResult(ctx context.Context, in *wire.PutJobSuccessResultInput) error {
	return r.call(ctx, "PutJobSuccessResult", in, nil)
}

func (r *Remote) PutJobFailureResult(ctx context.Context, in *wire.PutJobFailureResultInput) error {
	return r.call(ctx, "PutJobFailureResult", in, nil)
}

// jobRequest sends a request to a runner endpoint of a job, authenticated
// with the job's id and nonce.
func (r *Remote) jobRequest(ctx context.Context, method, path, jobID, nonce string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, r.URL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+identity.RequestToken(jobID, nonce))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := r.HTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, raw, err
}

// Heartbeat renews the job's lease: POST /runner/v1/jobs/{id}/heartbeat.
func (r *Remote) Heartbeat(ctx context.Context, jobID, nonce string) (bool, error) {
	status, raw, err := r.jobRequest(ctx, http.MethodPost, "/runner/v1/jobs/"+url.PathEscape(jobID)+"/heartbeat", jobID, nonce, nil)
	if err != nil {
		return false, err
	}
	switch status {
	case http.StatusOK:
		var out struct {
			Stop bool `json:"stop"`
		}
		if err := json.Unmarshal(raw, &out); err != nil {
			return false, fmt.Errorf("heartbeat answer: %w", err)
		}
		return out.Stop, nil
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		return false, wire.Errorf(wire.ErrInvalidNonce, "the server does not know the job's id and nonce (HTTP %d)", status)
	default:
		return false, fmt.Errorf("heartbeat: HTTP %d", status)
	}
}

// AppendLog sends output at offset: PUT /runner/v1/jobs/{id}/log?offset=N,
// answered with the length the server holds (200, or 409 when offset is
// past it).
func (r *Remote) AppendLog(ctx context.Context, jobID, nonce string, offset int64, data []byte) (int64, error) {
	status, raw, err := r.jobRequest(ctx, http.MethodPut, "/runner/v1/jobs/"+url.PathEscape(jobID)+"/log?offset="+strconv.FormatInt(offset, 10), jobID, nonce, data)
	if err != nil {
		return 0, err
	}
	switch {
	case status == http.StatusOK || status == http.StatusConflict:
	case status >= 400 && status < 500 && status != http.StatusTooManyRequests && status != http.StatusRequestTimeout:
		return 0, fmt.Errorf("%w: HTTP %d", ErrLogsRefused, status)
	default:
		return 0, fmt.Errorf("log: HTTP %d", status)
	}
	var out struct {
		AckedLength int64 `json:"ackedLength"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return 0, fmt.Errorf("log answer: %w", err)
	}
	return out.AckedLength, nil
}
