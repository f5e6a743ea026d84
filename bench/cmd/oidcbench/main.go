// Command oidcbench measures pipelined's workload identity: how many ID
// tokens a second the token endpoint issues to a running job, and how many
// JWKS requests a second it serves, beside the ceiling: go-jose signing
// the same kind of token with a key of the same type, with as many
// goroutines, in the same process and the same run.
//
// The server runs in this process (internal/server, SQLite in a temporary
// directory), so client, server and ceiling share the machine's cores the
// same way; each measurement runs twice, interleaved with the others, and
// the report shows both rounds so that drift on a shared machine is
// visible.
//
//	go run ./bench/cmd/oidcbench [-duration 5s] [-conns 8] [-alg RS256] [-out report.md]
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"
	"github.com/go-jose/go-jose/v4"

	"github.com/pipelined/pipelined/internal/identity"
	"github.com/pipelined/pipelined/internal/server"
)

const (
	akid   = "PLAKBENCHROOT0000000"
	secret = "bench-root-secret-key-0123456789abcdefAB"
	region = "us-east-1"
)

// target: issuance (and JWKS serving) at least this fraction of the
// signing ceiling.
const target = 0.70

type options struct {
	duration time.Duration
	conns    int
	alg      string
	out      string
}

func main() {
	log.SetFlags(log.Ltime)
	log.SetPrefix("oidcbench: ")
	o := options{}
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "how long each measurement runs")
	flag.IntVar(&o.conns, "conns", 8, "concurrent clients (and ceiling goroutines)")
	flag.StringVar(&o.alg, "alg", "RS256", "signing algorithm: RS256 or ES256")
	flag.StringVar(&o.out, "out", "", "also write the markdown report to this file")
	flag.Parse()
	if o.duration <= 0 || o.conns < 1 || (o.alg != "RS256" && o.alg != "ES256") {
		log.Fatal("-duration and -conns must be positive; -alg RS256 or ES256")
	}
	if err := run(o); err != nil {
		log.Fatal(err)
	}
}

type round struct {
	ceiling, issuance, jwks float64 // per second
	errors                  int64
}

func run(o options) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir, err := os.MkdirTemp("", "oidcbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := server.New(ctx, server.Config{
		Listen: "127.0.0.1:0", DataDir: dir, Region: region, AccountID: "123456789012",
		RootAccessKeyID: akid, RootSecretAccessKey: secret,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Identity: server.IdentityConfig{OIDCAlgorithm: o.alg},
	})
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	url := "http://" + srv.Addr()

	bearer, err := holdJob(ctx, url)
	if err != nil {
		return fmt.Errorf("set up a running job: %w", err)
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.conns, MaxConnsPerHost: o.conns}}
	payload, err := samplePayload(ctx, hc, url, bearer)
	if err != nil {
		return err
	}
	sign, err := ceilingSigner(o.alg)
	if err != nil {
		return err
	}

	log.Printf("%s, %d goroutines, %s per measurement, GOMAXPROCS %d", o.alg, o.conns, o.duration, runtime.GOMAXPROCS(0))
	var rounds []round
	for range 2 {
		var r round
		r.ceiling = loop(o.conns, o.duration, func() error { _, err := sign(payload); return err }, nil)
		log.Printf("ceiling: %.0f signatures/s", r.ceiling)
		var errs atomic.Int64
		r.issuance = loop(o.conns, o.duration, func() error { return issue(ctx, hc, url, bearer) }, &errs)
		log.Printf("issuance: %.0f tokens/s", r.issuance)
		r.jwks = loop(o.conns, o.duration, func() error { return getJWKS(ctx, hc, url) }, &errs)
		log.Printf("JWKS: %.0f responses/s", r.jwks)
		r.errors = errs.Load()
		rounds = append(rounds, r)
	}
	report := render(o, rounds)
	fmt.Print(report)
	if o.out != "" {
		return os.WriteFile(o.out, []byte(report), 0o644)
	}
	return nil
}

// loop runs fn on n goroutines for d and returns the successful calls per
// second (failures are counted in errs).
func loop(n int, d time.Duration, fn func() error, errs *atomic.Int64) float64 {
	var ok atomic.Int64
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := fn(); err != nil {
					if errs != nil {
						errs.Add(1)
					}
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(ok.Load()) / time.Since(start).Seconds()
}

func issue(ctx context.Context, hc *http.Client, url, bearer string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/ng/api/oidc/id-token/aws", strings.NewReader(`{}`))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("Content-Type", "application/json")
	return roundTrip(hc, req)
}

// roundTrip sends req and reads the whole answer, which must be a 200.
func roundTrip(hc *http.Client, req *http.Request) error {
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", req.URL.Path, resp.StatusCode)
	}
	return nil
}

func getJWKS(ctx context.Context, hc *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/.well-known/jwks", nil)
	if err != nil {
		return err
	}
	return roundTrip(hc, req)
}

// samplePayload is the payload of a real token of the server, which the
// ceiling signs: the same size and shape.
func samplePayload(ctx context.Context, hc *http.Client, url, bearer string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/ng/api/oidc/id-token/aws", strings.NewReader(`{}`))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var env struct {
		Status string `json:"status"`
		Data   string `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil || env.Status != "SUCCESS" {
		return nil, fmt.Errorf("first token: HTTP %d %v", resp.StatusCode, err)
	}
	jws, err := jose.ParseSigned(env.Data, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		return nil, err
	}
	return jws.UnsafePayloadWithoutVerification(), nil
}

// ceilingSigner is go-jose alone with a fresh key of the algorithm, the
// same header fields as the server's tokens (kid, typ).
func ceilingSigner(alg string) (func([]byte) (string, error), error) {
	var key any
	var err error
	if alg == "RS256" {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return nil, err
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(alg),
		Key: jose.JSONWebKey{Key: key, KeyID: "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG", Algorithm: alg}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	return func(p []byte) (string, error) {
		jws, err := s.Sign(p)
		if err != nil {
			return "", err
		}
		return jws.CompactSerialize()
	}, nil
}

// holdJob registers a custom action type and a pipeline, polls and
// acknowledges its job, and returns the job's request token.
func holdJob(ctx context.Context, url string) (string, error) {
	c := codepipeline.New(codepipeline.Options{Region: region, BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider(akid, secret, "")})
	typ := &types.ActionTypeId{Category: types.ActionCategoryBuild, Owner: types.ActionOwnerCustom, Provider: aws.String("Bench"), Version: aws.String("1")}
	if _, err := c.CreateCustomActionType(ctx, &codepipeline.CreateCustomActionTypeInput{
		Category: typ.Category, Provider: typ.Provider, Version: typ.Version,
		InputArtifactDetails: &types.ArtifactDetails{}, OutputArtifactDetails: &types.ArtifactDetails{},
	}); err != nil {
		return "", err
	}
	src := &types.ActionTypeId{Category: types.ActionCategorySource, Owner: types.ActionOwnerCustom, Provider: aws.String("BenchSource"), Version: aws.String("1")}
	if _, err := c.CreateCustomActionType(ctx, &codepipeline.CreateCustomActionTypeInput{
		Category: src.Category, Provider: src.Provider, Version: src.Version,
		InputArtifactDetails: &types.ArtifactDetails{}, OutputArtifactDetails: &types.ArtifactDetails{MinimumCount: 1, MaximumCount: 1},
	}); err != nil {
		return "", err
	}
	_, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: &types.PipelineDeclaration{
		Name: aws.String("oidcbench"), RoleArn: aws.String("arn:aws:iam::123456789012:role/r"),
		ArtifactStore: &types.ArtifactStore{Type: types.ArtifactStoreTypeS3, Location: aws.String("artifacts")},
		Stages: []types.StageDeclaration{
			{Name: aws.String("Source"), Actions: []types.ActionDeclaration{{Name: aws.String("Src"), ActionTypeId: src, OutputArtifacts: []types.OutputArtifact{{Name: aws.String("Code")}}}}},
			{Name: aws.String("Deploy"), Actions: []types.ActionDeclaration{{Name: aws.String("Ship"), ActionTypeId: typ}}},
		},
	}})
	if err != nil {
		return "", err
	}
	for range 50 {
		out, err := c.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: src})
		if err != nil {
			return "", err
		}
		if len(out.Jobs) == 1 {
			j := out.Jobs[0]
			if _, err := c.AcknowledgeJob(ctx, &codepipeline.AcknowledgeJobInput{JobId: j.Id, Nonce: j.Nonce}); err != nil {
				return "", err
			}
			return identity.RequestToken(*j.Id, *j.Nonce), nil
		}
	}
	return "", errors.New("no job was queued")
}

func render(o options, rounds []round) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "## Workload identity (%s, %d concurrent clients, %s per measurement, GOMAXPROCS %d)\n\n", o.alg, o.conns, o.duration, runtime.GOMAXPROCS(0))
	fmt.Fprintf(&b, "| round | go-jose signing ceiling (signatures/s) | ID tokens issued (POST id-token/aws, tokens/s) | issued ÷ ceiling | JWKS served (GET, responses/s) | JWKS ÷ ceiling | errors |\n|--:|--:|--:|--:|--:|--:|--:|\n")
	pass := true
	for i, r := range rounds {
		fmt.Fprintf(&b, "| %d | %.0f | %.0f | **%.2f** | %.0f | %.1f | %d |\n", i+1, r.ceiling, r.issuance, r.issuance/r.ceiling, r.jwks, r.jwks/r.ceiling, r.errors)
		if r.issuance/r.ceiling < target || r.errors > 0 {
			pass = false
		}
	}
	verdict := "met"
	if !pass {
		verdict = "NOT met"
	}
	fmt.Fprintf(&b, "\nTarget: issuance at least %.0f%% of the ceiling in every round, no errors: **%s**. The server, its SQLite store, the HTTP clients and the ceiling share this process and its cores; an issued token costs one signature plus the request (authenticating the job: a job and an execution read; the pipeline's tags for the sub).\n", target*100, verdict)
	return b.String()
}
