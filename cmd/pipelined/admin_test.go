package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"

	"github.com/pipelined/pipelined/internal/admin"
	"github.com/pipelined/pipelined/internal/pgtest"
)

// cleanEnv is the environment without anything that would configure the
// server or the AWS SDK behind the test's back.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PIPELINED_") || strings.HasPrefix(kv, "AWS_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// serveGenerated runs `pipelined serve` with generated root credentials,
// as an operator's first start does, and returns it with the path of the
// credentials file it wrote.
func serveGenerated(t *testing.T, database string) (*replica, string) {
	t.Helper()
	dir := t.TempDir()
	addr := freeAddr(t)
	cmd := exec.Command(binary, "serve", "--listen", addr, "--data-dir", dir, "--log-level", "warn")
	cmd.Env = append(cleanEnv(), "PIPELINED_MASTER_KEY="+masterKey)
	if database != "" {
		cmd.Env = append(cmd.Env, "PIPELINED_DATABASE="+database)
	}
	r := launch(t, cmd, "http://"+addr)
	return r, filepath.Join(dir, "credentials")
}

// cli runs `pipelined admin ...` with env (on top of a clean environment).
func cli(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"admin"}, args...)...)
	cmd.Env = append(cleanEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run pipelined admin: %v", err)
	}
	return out.String(), errb.String(), code
}

func TestAdminCLI(t *testing.T) {
	for _, backend := range []struct {
		name string
		db   func(t *testing.T) string
	}{
		{"sqlite", func(*testing.T) string { return "" }},
		{"postgres", func(t *testing.T) string { return pgtest.DSN(t) }},
	} {
		t.Run(backend.name, func(t *testing.T) { adminCLI(t, backend.db(t)) })
	}
}

func adminCLI(t *testing.T, database string) {
	srv, credFile := serveGenerated(t, database)
	home := t.TempDir()
	// The AWS way: endpoint, region and a shared-credentials file from the
	// environment; no config file, no instance metadata.
	env := []string{
		"HOME=" + home, "AWS_SHARED_CREDENTIALS_FILE=" + credFile, "AWS_CONFIG_FILE=" + filepath.Join(home, "no-config"),
		"AWS_ENDPOINT_URL=" + srv.url, "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true",
	}
	ctx := context.Background()

	typeFile := filepath.Join(t.TempDir(), "type.json")
	if err := os.WriteFile(typeFile, []byte(`{
		"category": "Source", "provider": "PartnerSource", "version": "1",
		"settings": {"entityUrlTemplate": "https://partner.example.com/{Config:Repo}"},
		"configurationProperties": [
			{"name": "Repo", "required": true, "key": true, "secret": false},
			{"name": "ApiKey", "required": false, "key": false, "secret": true}
		],
		"inputArtifactDetails": {"minimumCount": 0, "maximumCount": 0},
		"outputArtifactDetails": {"minimumCount": 1, "maximumCount": 1},
		"jobTimeoutInMinutes": 20
	}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := cli(t, env, "register-third-party-action-type", "--cli-input-json", "file://"+typeFile)
	if code != 0 {
		t.Fatalf("register: exit %d: %s", code, errOut)
	}
	var reg admin.RegisterActionTypeOutput
	if err := json.Unmarshal([]byte(out), &reg); err != nil || reg.ActionType.Id.Owner != "ThirdParty" || reg.JobTimeoutInMinutes != 20 {
		t.Fatalf("register printed %q (%v)", out, err)
	}

	// A pipeline using it, created with the SDK and the same credentials
	// file. Creating it starts it: the Fetch job is queued at once.
	cfg, err := config.LoadDefaultConfig(ctx, config.WithSharedCredentialsFiles([]string{credFile}), config.WithSharedConfigFiles(nil), config.WithRegion("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	c := codepipeline.NewFromConfig(cfg, func(o *codepipeline.Options) { o.BaseEndpoint = aws.String(srv.url); o.RetryMaxAttempts = 1 })
	sourceType := &types.ActionTypeId{Category: types.ActionCategorySource, Owner: types.ActionOwnerThirdParty, Provider: aws.String("PartnerSource"), Version: aws.String("1")}
	p := pipelineNamed("cli", "x")
	p.Stages[0].Actions[0].ActionTypeId = sourceType
	p.Stages[0].Actions[0].Configuration = map[string]string{"Repo": "app", "ApiKey": "k3y"}
	if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: p}); err != nil {
		t.Fatal(err)
	}

	// Issue, with --endpoint-url and --region given as flags this time.
	noEndpoint := []string{"HOME=" + home, "AWS_SHARED_CREDENTIALS_FILE=" + credFile, "AWS_CONFIG_FILE=" + filepath.Join(home, "no-config"), "AWS_EC2_METADATA_DISABLED=true"}
	out, errOut, code = cli(t, noEndpoint, "issue-client", "--pipeline", "cli", "--stage", "Source", "--action", "Fetch", "--endpoint-url", srv.url, "--region", "us-east-1")
	if code != 0 {
		t.Fatalf("issue-client: exit %d: %s", code, errOut)
	}
	var issued admin.ThirdPartyClient
	if err := json.Unmarshal([]byte(out), &issued); err != nil || issued.ClientID == "" || issued.ClientToken == "" || issued.Status != admin.StatusActive {
		t.Fatalf("issue-client printed %q (%v)", out, err)
	}
	if !strings.Contains(out, `"clientId"`) || !strings.Contains(out, `"clientToken"`) {
		t.Errorf("issue-client output lacks clientId/clientToken: %s", out)
	}

	// The pair works: the Fetch job is its client's, and opens with the token.
	out2, err := c.PollForThirdPartyJobs(ctx, &codepipeline.PollForThirdPartyJobsInput{ActionTypeId: sourceType})
	if err != nil || len(out2.Jobs) != 1 {
		t.Fatalf("poll: %+v %v", out2, err)
	}
	job := out2.Jobs[0]
	if aws.ToString(job.ClientId) != issued.ClientID {
		t.Fatalf("job clientId = %s, want %s", aws.ToString(job.ClientId), issued.ClientID)
	}
	d, err := c.GetThirdPartyJobDetails(ctx, &codepipeline.GetThirdPartyJobDetailsInput{JobId: job.JobId, ClientToken: aws.String(issued.ClientToken)})
	if err != nil || d.JobDetails.Data.ActionConfiguration.Configuration["ApiKey"] != "k3y" {
		t.Fatalf("details with the issued token: %+v %v", d, err)
	}

	// list-clients shows it, never its token.
	out, errOut, code = cli(t, env, "list-clients", "--pipeline", "cli")
	if code != 0 {
		t.Fatalf("list-clients: exit %d: %s", code, errOut)
	}
	var list admin.ListClientsOutput
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Clients) != 1 || list.Clients[0].ClientID != issued.ClientID || list.Clients[0].Status != admin.StatusActive {
		t.Fatalf("list-clients printed %q (%v)", out, err)
	}
	if strings.Contains(out, issued.ClientToken) || strings.Contains(out, "clientToken") {
		t.Fatalf("list-clients shows a token: %s", out)
	}

	// A second client for the same action is refused, with the reason.
	_, errOut, code = cli(t, env, "issue-client", "--pipeline", "cli", "--stage", "Source", "--action", "Fetch")
	if code != 1 || !strings.Contains(errOut, admin.ErrClientAlreadyExists) || !strings.Contains(errOut, "revoke-client") {
		t.Errorf("second issue-client: exit %d, stderr %q", code, errOut)
	}

	// Revoke: the token stops working.
	out, errOut, code = cli(t, env, "revoke-client", "--client-id", issued.ClientID)
	if code != 0 || !strings.Contains(out, admin.StatusRevoked) {
		t.Fatalf("revoke-client: exit %d: %s %s", code, out, errOut)
	}
	_, err = c.GetThirdPartyJobDetails(ctx, &codepipeline.GetThirdPartyJobDetailsInput{JobId: job.JobId, ClientToken: aws.String(issued.ClientToken)})
	if errCode(err) != "InvalidClientTokenException" {
		t.Fatalf("details with a revoked token: %v", err)
	}

	// Errors: from the server (exit 1, code and message on stderr), and
	// from the command line (exit 2).
	for _, tc := range []struct {
		env  []string
		args []string
		code int
		want string
	}{
		{env, []string{"issue-client", "--pipeline", "nope", "--stage", "Source", "--action", "Fetch"}, 1, "PipelineNotFoundException"},
		{env, []string{"issue-client", "--pipeline", "cli", "--stage", "Approve", "--action", "Gate"}, 1, "ValidationException"},
		{env, []string{"revoke-client", "--client-id", "nope"}, 1, admin.ErrClientNotFound},
		{env, []string{"list-clients", "--region", "eu-west-1"}, 1, "InvalidSignatureException"},
		{env, []string{"issue-client", "--pipeline", "cli"}, 2, "missing --action, --stage"},
		{env, []string{"register-third-party-action-type", "--cli-input-json", "file://" + filepath.Join(home, "missing.json")}, 2, "missing.json"},
		{env, []string{"frobnicate"}, 2, "unknown command"},
		{noEndpoint, []string{"list-clients", "--region", "us-east-1"}, 2, "AWS_ENDPOINT_URL"},
	} {
		_, errOut, code := cli(t, tc.env, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("admin %v: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}

	// Credentials that are not the server's are refused.
	wrong := filepath.Join(home, "wrong-credentials")
	if err := os.WriteFile(wrong, []byte("[default]\naws_access_key_id = PLAKNOTTHEROOTKEY000\naws_secret_access_key = nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongEnv := append(append([]string(nil), env...), "AWS_SHARED_CREDENTIALS_FILE="+wrong)
	if _, errOut, code := cli(t, wrongEnv, "list-clients"); code != 1 || !strings.Contains(errOut, "UnrecognizedClientException") {
		t.Errorf("list-clients with wrong credentials: exit %d, stderr %q", code, errOut)
	}

	if out, _, code := cli(t, env, "help"); code != 0 || !strings.Contains(out, "issue-client") || !strings.Contains(out, "AWS_SHARED_CREDENTIALS_FILE") {
		t.Errorf("admin help: exit %d: %s", code, out)
	}
	if out, err := exec.Command(binary, "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "pipelined admin") {
		t.Errorf("--help does not mention admin: %s", out)
	}
}

func TestAdminCLIWorkerKeys(t *testing.T) {
	for _, backend := range []struct {
		name string
		db   func(t *testing.T) string
	}{
		{"sqlite", func(*testing.T) string { return "" }},
		{"postgres", func(t *testing.T) string { return pgtest.DSN(t) }},
	} {
		t.Run(backend.name, func(t *testing.T) { workerKeysCLI(t, backend.db(t)) })
	}
}

// workerConfig is an SDK configuration from a shared-credentials file and
// its profile only (no config file, no environment credentials).
func workerConfig(t *testing.T, credFile, profile string) aws.Config {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithSharedCredentialsFiles([]string{credFile}),
		config.WithSharedConfigFiles([]string{filepath.Join(t.TempDir(), "no-config")}), config.WithSharedConfigProfile(profile), config.WithRegion("us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func workerKeysCLI(t *testing.T, database string) {
	srv, credFile := serveGenerated(t, database)
	home := t.TempDir()
	env := []string{
		"HOME=" + home, "AWS_SHARED_CREDENTIALS_FILE=" + credFile, "AWS_CONFIG_FILE=" + filepath.Join(home, "no-config"),
		"AWS_ENDPOINT_URL=" + srv.url, "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true",
	}
	ctx := context.Background()
	endpoint := func(o *codepipeline.Options) { o.BaseEndpoint = aws.String(srv.url); o.RetryMaxAttempts = 1 }
	root := codepipeline.NewFromConfig(workerConfig(t, credFile, "default"), endpoint)

	// Two custom source types; a pipeline of the first, whose creation
	// queues a job of it.
	for _, provider := range []string{"Fetcher", "Other"} {
		if _, err := root.CreateCustomActionType(ctx, &codepipeline.CreateCustomActionTypeInput{Category: types.ActionCategorySource, Provider: aws.String(provider), Version: aws.String("1"),
			InputArtifactDetails: &types.ArtifactDetails{MinimumCount: 0, MaximumCount: 0}, OutputArtifactDetails: &types.ArtifactDetails{MinimumCount: 1, MaximumCount: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	fetcher := &types.ActionTypeId{Category: types.ActionCategorySource, Owner: types.ActionOwnerCustom, Provider: aws.String("Fetcher"), Version: aws.String("1")}
	p := pipelineNamed("wk", "x")
	p.Stages[0].Actions[0].ActionTypeId = fetcher
	p.Stages[0].Actions[0].Configuration = nil
	if _, err := root.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: p}); err != nil {
		t.Fatal(err)
	}

	// Issue a key for it, written to a credentials file for a worker host.
	workDir := t.TempDir()
	wkFile := filepath.Join(workDir, "worker-credentials")
	out, errOut, code := cli(t, env, "create-worker-key", "--category", "Source", "--owner", "Custom", "--provider", "Fetcher", "--version", "1",
		"--description", "fetch hosts", "--credentials-file", wkFile, "--credentials-profile", "fetcher")
	if code != 0 {
		t.Fatalf("create-worker-key: exit %d: %s", code, errOut)
	}
	var issued admin.CreateWorkerKeyOutput
	if err := json.Unmarshal([]byte(out), &issued); err != nil || issued.WorkerKey.AccessKeyID == "" || issued.SecretAccessKey == "" ||
		issued.WorkerKey.Status != admin.StatusActive || issued.WorkerKey.Description != "fetch hosts" || issued.WorkerKey.ActionTypeID.Provider != "Fetcher" {
		t.Fatalf("create-worker-key printed %q (%v)", out, err)
	}
	id, secret := issued.WorkerKey.AccessKeyID, issued.SecretAccessKey
	if n := strings.Count(out+errOut, secret); n != 1 {
		t.Errorf("the secret is printed %d times (stdout %q, stderr %q), want once", n, out, errOut)
	}
	if !strings.Contains(errOut, wkFile) || !strings.Contains(errOut, "[fetcher]") {
		t.Errorf("stderr does not say where the key was written: %q", errOut)
	}
	fi, err := os.Stat(wkFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v, %v; want mode 0600", fi, err)
	}
	written, _ := os.ReadFile(wkFile)
	if !strings.Contains(string(written), "[fetcher]\naws_access_key_id = "+id+"\naws_secret_access_key = "+secret+"\n") {
		t.Fatalf("credentials file:\n%s", written)
	}

	// A worker configured from that file alone polls its type's jobs, and
	// nothing else.
	wcfg := workerConfig(t, wkFile, "fetcher")
	if creds, err := wcfg.Credentials.Retrieve(ctx); err != nil || creds.AccessKeyID != id {
		t.Fatalf("the worker's credentials are %q (%v), not the key's %s: not from the file?", creds.AccessKeyID, err, id)
	}
	worker := codepipeline.NewFromConfig(wcfg, endpoint)
	polled, err := worker.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: fetcher})
	if err != nil || len(polled.Jobs) != 1 {
		t.Fatalf("PollForJobs with the worker key: %+v, %v", polled, err)
	}
	if _, err := worker.ListPipelines(ctx, &codepipeline.ListPipelinesInput{}); errCode(err) != "AccessDeniedException" {
		t.Errorf("ListPipelines with the worker key: %v, want AccessDeniedException", err)
	}
	other := &types.ActionTypeId{Category: types.ActionCategorySource, Owner: types.ActionOwnerCustom, Provider: aws.String("Other"), Version: aws.String("1")}
	if _, err := worker.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: other}); errCode(err) != "AccessDeniedException" {
		t.Errorf("PollForJobs of another type with the worker key: %v, want AccessDeniedException", err)
	}
	workerEnv := []string{"HOME=" + home, "AWS_SHARED_CREDENTIALS_FILE=" + wkFile, "AWS_PROFILE=fetcher", "AWS_CONFIG_FILE=" + filepath.Join(home, "no-config"),
		"AWS_ENDPOINT_URL=" + srv.url, "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true"}
	if _, errOut, code := cli(t, workerEnv, "list-worker-keys"); code != 1 || !strings.Contains(errOut, "HTTP 403") {
		t.Errorf("the admin API with the worker key: exit %d, stderr %q; want exit 1, HTTP 403", code, errOut)
	}

	// list and describe, never with the secret.
	out, errOut, code = cli(t, env, "list-worker-keys")
	var list admin.ListWorkerKeysOutput
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list.WorkerKeys) != 1 || list.WorkerKeys[0].AccessKeyID != id || list.WorkerKeys[0].Status != admin.StatusActive {
		t.Fatalf("list-worker-keys: exit %d: %q %q", code, out, errOut)
	}
	if strings.Contains(out, secret) || strings.Contains(out, "secretAccessKey") {
		t.Fatalf("list-worker-keys shows the secret: %s", out)
	}
	out, errOut, code = cli(t, env, "describe-worker-key", "--access-key-id", id)
	var one admin.WorkerKeyOutput
	if code != 0 || json.Unmarshal([]byte(out), &one) != nil || one.WorkerKey.AccessKeyID != id || one.WorkerKey.Created != issued.WorkerKey.Created {
		t.Fatalf("describe-worker-key: exit %d: %q %q", code, out, errOut)
	}
	if strings.Contains(out, secret) {
		t.Fatalf("describe-worker-key shows the secret: %s", out)
	}

	// An existing file is refused, before anything is issued: the server's
	// own credentials file, or the worker file just written.
	create := func(extra ...string) (string, string, int) {
		return cli(t, env, append([]string{"create-worker-key", "--category", "Source", "--owner", "Custom", "--provider", "Fetcher", "--version", "1"}, extra...)...)
	}
	rootBefore, _ := os.ReadFile(credFile)
	for _, existing := range []string{wkFile, credFile} {
		_, errOut, code = create("--credentials-file", existing, "--credentials-profile", "fetcher")
		if code != 2 || !strings.Contains(errOut, "exists") {
			t.Errorf("create-worker-key to the existing %s: exit %d, stderr %q; want exit 2 saying it exists", existing, code, errOut)
		}
	}
	if b, _ := os.ReadFile(wkFile); string(b) != string(written) {
		t.Fatalf("the refused command changed the worker file:\n%s", b)
	}
	if b, _ := os.ReadFile(credFile); string(b) != string(rootBefore) {
		t.Fatal("the root credentials file was changed")
	}
	if ks := listKeys(t, env); len(ks) != 1 {
		t.Fatalf("a refused create-worker-key issued a key: %+v", ks)
	}
	// A new file without --credentials-profile gets [default].
	defFile := filepath.Join(workDir, "default-credentials")
	out, errOut, code = create("--credentials-file", defFile)
	if code != 0 {
		t.Fatalf("create-worker-key to a new file: exit %d: %s", code, errOut)
	}
	var second admin.CreateWorkerKeyOutput
	_ = json.Unmarshal([]byte(out), &second)
	if c, err := workerConfig(t, defFile, "default").Credentials.Retrieve(ctx); err != nil || c.AccessKeyID != second.WorkerKey.AccessKeyID || c.SecretAccessKey != second.SecretAccessKey {
		t.Fatalf("profile [default] of the new file = %q, %v", c.AccessKeyID, err)
	}
	if fi, err := os.Stat(defFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("new credentials file: %v, %v; want mode 0600", fi, err)
	}
	if ks := listKeys(t, env); len(ks) != 2 {
		t.Fatalf("%d keys, want 2: %+v", len(ks), ks)
	}

	// Revoke: the key stops working; revoking again is harmless.
	out, errOut, code = cli(t, env, "revoke-worker-key", "--access-key-id", id)
	if code != 0 || json.Unmarshal([]byte(out), &one) != nil || one.WorkerKey.Status != admin.StatusRevoked || one.WorkerKey.Revoked == "" {
		t.Fatalf("revoke-worker-key: exit %d: %q %q", code, out, errOut)
	}
	if _, err := worker.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: fetcher}); errCode(err) != "UnrecognizedClientException" {
		t.Errorf("PollForJobs with a revoked key: %v, want UnrecognizedClientException", err)
	}
	if out, errOut, code = cli(t, env, "revoke-worker-key", "--access-key-id", id); code != 0 || !strings.Contains(out, admin.StatusRevoked) {
		t.Errorf("revoking twice: exit %d: %q %q", code, out, errOut)
	}

	// Errors: from the server (exit 1), from the command line (exit 2).
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"create-worker-key", "--category", "Source", "--owner", "AWS", "--provider", "S3", "--version", "1"}, 1, "ValidationException"},
		{[]string{"create-worker-key", "--category", "Source", "--owner", "Custom", "--provider", "Nope", "--version", "1"}, 1, "ActionTypeNotFoundException"},
		{[]string{"create-worker-key", "--category", "Source", "--owner", "Custom", "--provider", "Fetcher", "--version", "1", "--description", strings.Repeat("x", 257)}, 1, "description"},
		{[]string{"describe-worker-key", "--access-key-id", "PLWKAAAAAAAAAAAAAAAA"}, 1, admin.ErrWorkerKeyNotFound},
		{[]string{"revoke-worker-key", "--access-key-id", "nope"}, 1, admin.ErrWorkerKeyNotFound},
		{[]string{"create-worker-key", "--category", "Source"}, 2, "missing --owner, --provider, --version"},
		{[]string{"create-worker-key", "--category", "Source", "--owner", "Custom", "--provider", "Fetcher", "--version", "1", "--force"}, 2, "flag provided but not defined"},
		{[]string{"create-worker-key", "--category", "Source", "--owner", "Custom", "--provider", "Fetcher", "--version", "1", "--credentials-profile", "p"}, 2, "--credentials-file"},
		{[]string{"create-worker-key", "--category", "Source", "--owner", "Custom", "--provider", "Fetcher", "--version", "1", "--credentials-file", filepath.Join(workDir, "x"), "--credentials-profile", "a]b"}, 2, "--credentials-profile"},
		{[]string{"create-worker-key", "--category", "Source", "--owner", "Custom", "--provider", "Fetcher", "--version", "1", "--credentials-file", filepath.Join(workDir, "no-dir", "x")}, 2, "directory"},
		{[]string{"describe-worker-key"}, 2, "missing --access-key-id"},
		{[]string{"list-worker-keys", "extra"}, 2, "unexpected argument"},
	} {
		_, errOut, code := cli(t, env, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("admin %v: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
	if ks := listKeys(t, env); len(ks) != 2 {
		t.Fatalf("the refused commands issued keys: %d, want 2", len(ks))
	}

	if out, _, code := cli(t, env, "help"); code != 0 || !strings.Contains(out, "create-worker-key") || !strings.Contains(out, "revoke-worker-key") || !strings.Contains(out, "--credentials-profile") {
		t.Errorf("admin help: exit %d: %s", code, out)
	}
}

func listKeys(t *testing.T, env []string) []admin.WorkerKey {
	t.Helper()
	out, errOut, code := cli(t, env, "list-worker-keys")
	var list admin.ListWorkerKeysOutput
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil {
		t.Fatalf("list-worker-keys: exit %d: %q %q", code, out, errOut)
	}
	return list.WorkerKeys
}
