package server_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"

	"github.com/pipelined/pipelined/internal/server/servertest"
)

const secretToken = "tok-9f8e7d6c5b4a-very-secret"

var sealedValue = regexp.MustCompile(`"ApiToken":"(sealed:v1:[^"]+)"`)

func storedToken(t *testing.T, srv *servertest.Instance, name string, version int) string {
	t.Helper()
	rec, err := srv.Store().GetPipeline(context.Background(), name, version)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(rec.Definition), secretToken) {
		t.Fatalf("version %d stores the secret in clear", version)
	}
	m := sealedValue.FindStringSubmatch(string(rec.Definition))
	if m == nil {
		t.Fatalf("version %d has no sealed ApiToken: %s", version, rec.Definition)
	}
	return m[1]
}

func TestSecretConfigurationIsMaskedSealedAndKept(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		srv := servertest.Start(t, backend)
		c := srv.Client()
		ctx := context.Background()
		if _, err := c.CreateCustomActionType(ctx, deployerType("1")); err != nil {
			t.Fatal(err)
		}
		// Sending the mask when nothing is stored is refused, not stored.
		_, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: pipelineUsingDeployer("masked", "1", "****")})
		wantCode(t, err, "InvalidActionDeclarationException")

		created, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: pipelineUsingDeployer("deploys", "1", secretToken)})
		if err != nil {
			t.Fatal(err)
		}
		if v := created.Pipeline.Stages[2].Actions[0].Configuration["ApiToken"]; v != "****" {
			t.Errorf("CreatePipeline returned the secret as %q", v)
		}
		got, err := c.GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String("deploys")})
		if err != nil {
			t.Fatal(err)
		}
		cfg := got.Pipeline.Stages[2].Actions[0].Configuration
		if cfg["ApiToken"] != "****" || cfg["Target"] != "prod" {
			t.Fatalf("GetPipeline configuration = %v", cfg)
		}
		sealed1 := storedToken(t, srv, "deploys", 1)

		// Sending back what GetPipeline showed keeps the stored secret.
		cfg["Target"] = "staging"
		if _, err := c.UpdatePipeline(ctx, &codepipeline.UpdatePipelineInput{Pipeline: got.Pipeline}); err != nil {
			t.Fatal(err)
		}
		if sealed2 := storedToken(t, srv, "deploys", 2); sealed2 != sealed1 {
			t.Error("UpdatePipeline with **** changed the stored secret")
		}
		// A new value replaces it.
		got, _ = c.GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String("deploys")})
		got.Pipeline.Stages[2].Actions[0].Configuration["ApiToken"] = "another-secret"
		if _, err := c.UpdatePipeline(ctx, &codepipeline.UpdatePipelineInput{Pipeline: got.Pipeline}); err != nil {
			t.Fatal(err)
		}
		if sealed3 := storedToken(t, srv, "deploys", 3); sealed3 == sealed1 {
			t.Error("a new secret value was not stored")
		}
		// Renaming the action loses the value to keep: refused, nothing written.
		got, _ = c.GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String("deploys")})
		got.Pipeline.Stages[2].Actions[0].Name = aws.String("Renamed")
		_, err = c.UpdatePipeline(ctx, &codepipeline.UpdatePipelineInput{Pipeline: got.Pipeline})
		wantCode(t, err, "InvalidActionDeclarationException")
		if latest, _ := srv.Store().GetPipeline(ctx, "deploys", 0); latest.Version != 3 {
			t.Errorf("refused update wrote version %d", latest.Version)
		}

		// The secret is nowhere in clear: not in logs, not in the database files.
		srv.Stop(t)
		if strings.Contains(srv.Logs(), secretToken) {
			t.Error("logs contain the secret")
		}
		files, _ := filepath.Glob(filepath.Join(srv.DataDir, "*"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			if strings.Contains(string(b), secretToken) {
				t.Errorf("%s contains the secret in clear", filepath.Base(f))
			}
		}
	})
}

func TestRestartKeepsEverything(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		dir := t.TempDir()
		first := servertest.Start(t, backend, withDataDir(dir))
		c := first.Client()
		ctx := context.Background()
		if _, err := c.CreateCustomActionType(ctx, deployerType("1")); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"a", "b"} {
			if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: pipelineUsingDeployer(name, "1", secretToken)}); err != nil {
				t.Fatal(err)
			}
		}
		sealed := storedToken(t, first, "a", 1)
		first.Stop(t)

		second := servertest.Start(t, backend, withDataDir(dir))
		c = second.Client()
		list, err := c.ListPipelines(ctx, &codepipeline.ListPipelinesInput{})
		if err != nil || len(list.Pipelines) != 2 {
			t.Fatalf("after restart: %+v %v", list, err)
		}
		types, err := c.ListActionTypes(ctx, &codepipeline.ListActionTypesInput{ActionOwnerFilter: "Custom"})
		if err != nil || len(types.ActionTypes) != 1 {
			t.Fatalf("custom types after restart: %+v %v", types, err)
		}
		if got := storedToken(t, second, "a", 1); got != sealed {
			t.Error("sealed secret changed across restart")
		}
		// Updating with the mask still works: the master key was kept in the data dir.
		got, err := c.GetPipeline(ctx, &codepipeline.GetPipelineInput{Name: aws.String("a")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.UpdatePipeline(ctx, &codepipeline.UpdatePipelineInput{Pipeline: got.Pipeline}); err != nil {
			t.Fatal(err)
		}
	})
}
