package admin

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
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Client calls the admin API, signing with SigV4 for SigningService. The
// `pipelined admin` command and the tests use it.
type Client struct {
	// Endpoint is the server's URL (as the aws CLI's --endpoint-url).
	Endpoint    string
	Region      string
	Credentials aws.CredentialsProvider
	// HTTP is the HTTP client (nil: one with a 30-second timeout).
	HTTP *http.Client
}

// APIError is an error answer of the admin API.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s (HTTP %d): %s", e.Code, e.Status, e.Message)
}

var defaultHTTP = &http.Client{Timeout: 30 * time.Second}

// Do sends a signed request to PathPrefix+path and returns the answer's
// status and body, whatever the status.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body []byte) (int, []byte, error) {
	target := strings.TrimRight(c.Endpoint, "/") + PathPrefix + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	creds, err := c.Credentials.Retrieve(ctx)
	if err != nil {
		return 0, nil, fmt.Errorf("credentials: %w", err)
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hash, SigningService, c.Region, time.Now()); err != nil {
		return 0, nil, fmt.Errorf("sign the request: %w", err)
	}
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, out, nil
}

// Call sends in (nil: no body; []byte: as is; else its JSON) and decodes
// a 2xx answer into out (when not nil). Other answers are *APIError.
func (c *Client) Call(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body []byte
	switch v := in.(type) {
	case nil:
	case []byte:
		body = v
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		body = b
	}
	status, resp, err := c.Do(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	if status < 200 || status > 299 {
		e := &APIError{Status: status}
		var eb ErrorBody
		if json.Unmarshal(resp, &eb) == nil && eb.Code != "" {
			e.Code, e.Message = eb.Code, eb.Message
		} else {
			e.Code, e.Message = http.StatusText(status), strings.TrimSpace(string(resp))
		}
		return e
	}
	if out != nil {
		return json.Unmarshal(resp, out)
	}
	return nil
}

// RegisterActionType registers a third-party action type.
func (c *Client) RegisterActionType(ctx context.Context, in *RegisterActionTypeInput) (*RegisterActionTypeOutput, error) {
	var out RegisterActionTypeOutput
	return &out, c.Call(ctx, http.MethodPost, "third-party-action-types", nil, in, &out)
}

// DeregisterActionType deregisters a third-party action type.
func (c *Client) DeregisterActionType(ctx context.Context, category, provider, version string) error {
	return c.Call(ctx, http.MethodDelete, ActionTypePath(category, provider, version), nil, nil, nil)
}

// ActionTypePath is the path (below PathPrefix) of a third-party action type.
func ActionTypePath(category, provider, version string) string {
	return "third-party-action-types/" + url.PathEscape(category) + "/" + url.PathEscape(provider) + "/" + url.PathEscape(version)
}

// IssueClient issues a client pair for a pipeline action.
func (c *Client) IssueClient(ctx context.Context, pipeline, stage, action string) (*ThirdPartyClient, error) {
	var out ThirdPartyClient
	return &out, c.Call(ctx, http.MethodPost, "clients", nil, IssueClientInput{PipelineName: pipeline, StageName: stage, ActionName: action}, &out)
}

// RevokeClient revokes a client.
func (c *Client) RevokeClient(ctx context.Context, id string) (*ThirdPartyClient, error) {
	var out ClientOutput
	return &out.Client, c.Call(ctx, http.MethodDelete, "clients/"+url.PathEscape(id), nil, nil, &out)
}

// ListClients lists the clients of a pipeline ("" for all).
func (c *Client) ListClients(ctx context.Context, pipeline string) ([]ThirdPartyClient, error) {
	var q url.Values
	if pipeline != "" {
		q = url.Values{"pipelineName": {pipeline}}
	}
	var out ListClientsOutput
	return out.Clients, c.Call(ctx, http.MethodGet, "clients", q, nil, &out)
}

// CreateWorkerKey issues a worker key for an action type of owner Custom or
// ThirdParty. The answer is the only one that holds the secret.
func (c *Client) CreateWorkerKey(ctx context.Context, in *CreateWorkerKeyInput) (*CreateWorkerKeyOutput, error) {
	var out CreateWorkerKeyOutput
	return &out, c.Call(ctx, http.MethodPost, "worker-keys", nil, in, &out)
}

// ListWorkerKeys lists every worker key, revoked ones included.
func (c *Client) ListWorkerKeys(ctx context.Context) ([]WorkerKey, error) {
	var out ListWorkerKeysOutput
	return out.WorkerKeys, c.Call(ctx, http.MethodGet, "worker-keys", nil, nil, &out)
}

// DescribeWorkerKey reads one worker key.
func (c *Client) DescribeWorkerKey(ctx context.Context, accessKeyID string) (*WorkerKey, error) {
	var out WorkerKeyOutput
	return &out.WorkerKey, c.Call(ctx, http.MethodGet, WorkerKeyPath(accessKeyID), nil, nil, &out)
}

// RevokeWorkerKey revokes a worker key (revoking a revoked one is harmless).
func (c *Client) RevokeWorkerKey(ctx context.Context, accessKeyID string) (*WorkerKey, error) {
	var out WorkerKeyOutput
	return &out.WorkerKey, c.Call(ctx, http.MethodDelete, WorkerKeyPath(accessKeyID), nil, nil, &out)
}

// WorkerKeyPath is the path (below PathPrefix) of a worker key.
func WorkerKeyPath(accessKeyID string) string {
	return "worker-keys/" + url.PathEscape(accessKeyID)
}

// CreateConsoleUser creates a web console user.
func (c *Client) CreateConsoleUser(ctx context.Context, in *CreateConsoleUserInput) (*ConsoleUserOutput, error) {
	out := new(ConsoleUserOutput)
	return out, c.Call(ctx, http.MethodPost, ConsoleUsersPath, nil, in, out)
}

// UpdateConsoleUser changes a web console user.
func (c *Client) UpdateConsoleUser(ctx context.Context, name string, in *UpdateConsoleUserInput) (*ConsoleUserOutput, error) {
	out := new(ConsoleUserOutput)
	return out, c.Call(ctx, http.MethodPatch, ConsoleUserPath(name), nil, in, out)
}

// ListConsoleUsers lists the web console's users.
func (c *Client) ListConsoleUsers(ctx context.Context) ([]ConsoleUser, error) {
	out := new(ListConsoleUsersOutput)
	return out.ConsoleUsers, c.Call(ctx, http.MethodGet, ConsoleUsersPath, nil, nil, out)
}
