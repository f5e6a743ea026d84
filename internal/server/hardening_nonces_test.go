package server_test

import (
	"bytes"
	"context"
	"database/sql"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"

	"github.com/pipelined/pipelined/internal/admin"
	"github.com/pipelined/pipelined/internal/identity"
	"github.com/pipelined/pipelined/internal/server"
	"github.com/pipelined/pipelined/internal/server/servertest"
	"github.com/pipelined/pipelined/internal/wire"
)

// wantNonceNotAtRest checks that the store keeps a hash of the job's
// nonce, and that no file of the data dir holds the nonce.
func wantNonceNotAtRest(t *testing.T, srv *servertest.Instance, jobID, nonce string) {
	t.Helper()
	j, err := srv.Store().GetJob(context.Background(), jobID)
	if err != nil {
		t.Fatal(err)
	}
	if j.NonceHash == "" || strings.Contains(j.NonceHash, nonce) || j.Nonce != "" {
		t.Errorf("job %s is stored with NonceHash %q, Nonce %q: want a hash only", jobID, j.NonceHash, j.Nonce)
	}
	files, _ := filepath.Glob(filepath.Join(srv.DataDir, "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil && bytes.Contains(b, []byte(nonce)) {
			t.Errorf("%s holds job %s's nonce in clear", filepath.Base(f), jobID)
		}
	}
}

// TestJobNoncesAtRest: the store keeps keyed hashes of job nonces; the
// nonce still acknowledges its job and authenticates its ID-token
// requests, and GetThirdPartyJobDetails still gives a partner the same
// nonce every time.
func TestJobNoncesAtRest(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		srv, c := engineServer(t, backend)
		ctx := context.Background()

		job, bearer := heldJob(t, c, "noncy") // polled and acknowledged
		nonce := aws.ToString(job.Nonce)
		if len(nonce) < 32 {
			t.Fatalf("nonce %q is short", nonce)
		}
		// wrong differs from the nonce in its last character only.
		wrong := nonce[:len(nonce)-1] + "x"
		if strings.HasSuffix(nonce, "x") {
			wrong = nonce[:len(nonce)-1] + "y"
		}
		wantNonceNotAtRest(t, srv, *job.Id, nonce)
		if status, env := oidcCall(t, srv, "id-token/aws", bearer, nil); status != http.StatusOK {
			t.Fatalf("ID token with the job's nonce: %d %v", status, env)
		}
		if status, _ := oidcCall(t, srv, "id-token/aws", identity.RequestToken(*job.Id, wrong), nil); status != http.StatusUnauthorized {
			t.Errorf("ID token with a wrong nonce: %d, want 401", status)
		}
		// Acknowledging again with the nonce is harmless; a wrong one is refused.
		if _, err := c.AcknowledgeJob(ctx, &codepipeline.AcknowledgeJobInput{JobId: job.Id, Nonce: job.Nonce}); err != nil {
			t.Errorf("second AcknowledgeJob: %v", err)
		}
		_, err := c.AcknowledgeJob(ctx, &codepipeline.AcknowledgeJobInput{JobId: job.Id, Nonce: aws.String(wrong)})
		wantCode(t, err, "InvalidNonceException")

		// Third-party jobs: the partner gets the nonce from
		// GetThirdPartyJobDetails, as often as it asks.
		adm := &admin.Client{Endpoint: srv.URL, Region: servertest.Region, HTTP: srv.HTTP,
			Credentials: credentials.NewStaticCredentialsProvider(servertest.AccessKeyID, servertest.SecretAccessKey, "")}
		partner := &types.ActionTypeId{Category: types.ActionCategorySource, Owner: types.ActionOwnerThirdParty, Provider: aws.String("NoncePartner"), Version: aws.String("1")}
		if _, err := adm.RegisterActionType(ctx, &admin.RegisterActionTypeInput{CreateCustomActionTypeInput: wire.CreateCustomActionTypeInput{
			Category: "Source", Provider: "NoncePartner", Version: "1",
			ConfigurationProperties: []wire.ActionConfigurationProperty{{Name: "Repo", Required: wire.Ptr(true), Key: wire.Ptr(true), Secret: wire.Ptr(false)}},
			InputArtifactDetails:    &wire.ArtifactDetails{MinimumCount: wire.Ptr(0), MaximumCount: wire.Ptr(0)},
			OutputArtifactDetails:   &wire.ArtifactDetails{MinimumCount: wire.Ptr(1), MaximumCount: wire.Ptr(1)},
		}}); err != nil {
			t.Fatal(err)
		}
		p := identityPipeline("tpnonce")
		p.Stages[0].Actions[0].ActionTypeId = partner
		if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: p}); err != nil {
			t.Fatal(err)
		}
		cl, err := adm.IssueClient(ctx, "tpnonce", "Source", "Checkout")
		if err != nil {
			t.Fatal(err)
		}
		var tpJob types.ThirdPartyJob
		waitFor(t, "a third-party job", func() bool {
			out, err := c.PollForThirdPartyJobs(ctx, &codepipeline.PollForThirdPartyJobsInput{ActionTypeId: partner})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Jobs) > 0 {
				tpJob = out.Jobs[0]
			}
			return len(out.Jobs) > 0
		})
		details := func() string {
			d, err := c.GetThirdPartyJobDetails(ctx, &codepipeline.GetThirdPartyJobDetailsInput{JobId: tpJob.JobId, ClientToken: aws.String(cl.ClientToken)})
			if err != nil {
				t.Fatal(err)
			}
			return aws.ToString(d.JobDetails.Nonce)
		}
		tpNonce := details()
		if tpNonce == "" || details() != tpNonce {
			t.Fatalf("GetThirdPartyJobDetails gave nonce %q, then another", tpNonce)
		}
		wantNonceNotAtRest(t, srv, *tpJob.JobId, tpNonce)
		if _, err := c.AcknowledgeThirdPartyJob(ctx, &codepipeline.AcknowledgeThirdPartyJobInput{JobId: tpJob.JobId, Nonce: aws.String(tpNonce), ClientToken: aws.String(cl.ClientToken)}); err != nil {
			t.Fatal(err)
		}
		if details() != tpNonce {
			t.Error("the nonce changed when the job was acknowledged")
		}
		if status, env := oidcCall(t, srv, "id-token/aws", identity.RequestToken(*tpJob.JobId, tpNonce), nil); status != http.StatusOK {
			t.Fatalf("ID token with the third-party job's nonce: %d %v", status, env)
		}
	})
}

// TestLegacyNoncesAreHashedAtStart: a database from before schema version
// 6 holds clear nonces (migration 00006 keeps them: SQL has no master
// key). The next start replaces them with keyed hashes before it serves,
// and the nonces keep working for the jobs' workers.
func TestLegacyNoncesAreHashedAtStart(t *testing.T) {
	dir := t.TempDir()
	srv, c := engineServer(t, func(*server.Config) {}, withDataDir(dir))
	job, bearer := heldJob(t, c, "legacy")
	srv.Stop(t)

	// The row as a pre-00006 server left it, then migrated: the clear
	// nonce in the old column, no hash.
	db, err := sql.Open("sqlite", filepath.Join(dir, "pipelined.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE jobs SET nonce = ?, nonce_hash = '' WHERE id = ?`, aws.ToString(job.Nonce), aws.ToString(job.Id)); err != nil {
		t.Fatal(err)
	}

	again := servertest.Start(t, withDataDir(dir))
	if !strings.Contains(again.Logs(), "replaced clear job nonces with their keyed hashes") {
		t.Error("the start did not report hashing the legacy nonce")
	}
	var left int
	if err := db.QueryRow(`SELECT count(*) FROM jobs WHERE nonce <> ''`).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d clear nonces left after the start (%v)", left, err)
	}
	j, err := again.Store().GetJob(context.Background(), aws.ToString(job.Id))
	if err != nil || j.NonceHash == "" || strings.Contains(j.NonceHash, aws.ToString(job.Nonce)) {
		t.Errorf("job after the start: NonceHash %q (%v)", j.NonceHash, err)
	}
	if status, env := oidcCall(t, again, "id-token/aws", bearer, nil); status != http.StatusOK {
		t.Fatalf("ID token with the legacy nonce after the start: %d %v", status, env)
	}
}
