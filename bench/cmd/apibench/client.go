package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/pipelined/pipelined/internal/admin"
)

const (
	region        = "us-east-1"
	accessKeyID   = "AKIDBENCH"
	secretKey     = "benchsecret"
	targetPrefix  = "CodePipeline_20150709."
	jsonType      = "application/x-amz-json-1.1"
	maxErrorBytes = 300 // of an error response kept for the report
)

// client is the one load generator every target gets: raw net/http, each
// request built fresh and SigV4-signed (payload hash computed) the way an SDK
// does it, so that the client's cost is the same for every server and the
// servers' rates are comparable.
type client struct {
	http   *http.Client
	signer *v4.Signer
	creds  aws.Credentials
	urls   []string      // base URLs; requests go round-robin across them
	next   atomic.Uint64 // round-robin position
}

// newClient returns a client for the servers at urls keeping up to conns
// idle connections to each, so that conns workers reuse their connections
// instead of dialling per request.
func newClient(conns int, urls ...string) *client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns * len(urls),
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &client{
		http:   &http.Client{Transport: tr, Timeout: 30 * time.Second},
		signer: v4.NewSigner(),
		creds:  aws.Credentials{AccessKeyID: accessKeyID, SecretAccessKey: secretKey, Source: "apibench"},
		urls:   urls,
	}
}

func (c *client) close() { c.http.CloseIdleConnections() }

// as returns a client that signs with creds and shares everything else with
// c: its http.Client (so its transport and connections), its signer and its
// servers. Close c, not the clients derived from it.
func (c *client) as(creds aws.Credentials) *client {
	return &client{http: c.http, signer: c.signer, creds: creds, urls: c.urls}
}

// request is one signed API call, a POST.
type request struct {
	service     string // SigV4 service name
	path        string // the URL's path; empty: "/"
	target      string // X-Amz-Target, empty for query-protocol (IAM) and admin calls
	contentType string
	body        []byte
}

// apiCall is a CodePipeline JSON 1.1 call.
func apiCall(op string, body []byte) request {
	return request{service: "codepipeline", target: targetPrefix + op, contentType: jsonType, body: body}
}

// adminCall is a POST to pipelined's admin API at path (below
// /admin/v1/), signed for its service, "pipelined".
func adminCall(path string, body []byte) request {
	return request{service: admin.SigningService, path: admin.PathPrefix + path, contentType: "application/json", body: body}
}

// response is what a call returned; body is only valid until the buffer it
// was read into is reused.
type response struct {
	status int
	body   []byte
}

// do sends r to the next server round-robin, reading the response into buf
// (reused by the caller across requests, to keep the client's allocation
// the same for all targets). A non-nil error is a transport failure; an HTTP
// error status is returned in response.status.
func (c *client) do(ctx context.Context, r request, buf *bytes.Buffer) (response, error) {
	base := c.urls[0]
	if len(c.urls) > 1 {
		base = c.urls[(c.next.Add(1)-1)%uint64(len(c.urls))]
	}
	path := r.path
	if path == "" {
		path = "/"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(r.body))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Content-Type", r.contentType)
	if r.target != "" {
		req.Header.Set("X-Amz-Target", r.target)
	}
	sum := sha256.Sum256(r.body)
	if err := c.signer.SignHTTP(ctx, c.creds, req, hex.EncodeToString(sum[:]), r.service, region, time.Now()); err != nil {
		return response{}, fmt.Errorf("sign: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	buf.Reset()
	if _, err := io.Copy(buf, resp.Body); err != nil {
		return response{}, fmt.Errorf("read response: %w", err)
	}
	return response{status: resp.StatusCode, body: buf.Bytes()}, nil
}

// callErr turns a transport error or an answer other than 2xx (the API
// answers 200, the admin API 201 for what it creates) into an error whose
// text names the status and the start of the body, for the report.
func callErr(resp response, err error) error {
	if err != nil {
		return err
	}
	if resp.status < 200 || resp.status > 299 {
		b := resp.body
		if len(b) > maxErrorBytes {
			b = b[:maxErrorBytes]
		}
		return fmt.Errorf("HTTP %d: %s", resp.status, bytes.TrimSpace(b))
	}
	return nil
}

// call is do plus callErr, for setup steps that need the body.
func (c *client) call(ctx context.Context, r request) ([]byte, error) {
	var buf bytes.Buffer
	resp, err := c.do(ctx, r, &buf)
	if err := callErr(resp, err); err != nil {
		return nil, err
	}
	return resp.body, nil
}
