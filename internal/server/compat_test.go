package server_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/server"
	"github.com/pipelined/pipelined/internal/server/servertest"
)

// requireTool skips when a tool is missing, except in CI, where the
// compatibility tests must run.
func requireTool(t *testing.T, name string, args ...string) {
	t.Helper()
	if err := exec.Command(name, args...).Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s is not available (%v); the boto3/aws CLI compatibility tests need python3 with boto3 and the aws CLI", name, err)
	}
}

// TestCompatibilityBoto3AndCLI runs compat/test_codepipeline.py (boto3 and
// the aws CLI) against a server whose root credentials were generated into
// its data dir, used the way the README tells users to.
func TestCompatibilityBoto3AndCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("compatibility tests start python and the aws CLI; skipped with -short")
	}
	requireTool(t, "python3", "-c", "import boto3")
	requireTool(t, "aws", "--version")
	srv := servertest.Start(t, func(c *server.Config) {
		c.RootAccessKeyID, c.RootSecretAccessKey = "", "" // generate, as on a first start
		c.AccountID = "000000000000"
	})
	script, _ := filepath.Abs("../../compat/test_codepipeline.py")
	cmd := exec.Command("python3", script)
	cmd.Env = append(environWithout("AWS_"),
		"AWS_ENDPOINT_URL="+srv.URL,
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(srv.DataDir, "credentials"),
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_DEFAULT_REGION=us-east-1",
		"AWS_RETRY_MODE=standard", "AWS_MAX_ATTEMPTS=1",
	)
	out, err := cmd.CombinedOutput()
	t.Logf("compat output:\n%s", out)
	if err != nil {
		t.Fatalf("compatibility tests failed: %v", err)
	}
}

// TestCompatibilityArtifacts runs compat/test_artifacts.py: the end-to-end
// flow with boto3 and the aws CLI, a custom job worker and a third-party
// worker moving artifacts through the embedded S3 store with their job
// credentials, a manual approval and the built-in S3 source and deploy.
func TestCompatibilityArtifacts(t *testing.T) {
	if testing.Short() {
		t.Skip("compatibility tests start python and the aws CLI; skipped with -short")
	}
	requireTool(t, "python3", "-c", "import boto3")
	requireTool(t, "aws", "--version")
	srv := servertest.Start(t, func(c *server.Config) {
		c.RootAccessKeyID, c.RootSecretAccessKey = "", "" // generate, as on a first start
		c.AccountID = "000000000000"
		c.SourcePollInterval = -1       // the pipelines' sources do not poll; nothing else should either
		c.JobPollWait = 2 * time.Second // an empty poll answers soon, so a worker notices a failed execution
	})
	runCompatScript(t, srv, "test_artifacts.py")
}

// runCompatScript runs a script of compat/ against srv with the environment
// the README gives the aws CLI and boto3: endpoint, region and the server's
// generated credentials file.
func runCompatScript(t *testing.T, srv *servertest.Instance, name string) {
	t.Helper()
	script, _ := filepath.Abs(filepath.Join("../../compat", name))
	cmd := exec.Command("python3", script)
	cmd.Env = append(environWithout("AWS_"),
		"AWS_ENDPOINT_URL="+srv.URL,
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(srv.DataDir, "credentials"),
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_DEFAULT_REGION=us-east-1",
		"AWS_RETRY_MODE=standard", "AWS_MAX_ATTEMPTS=1",
	)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("%s output (%s):\n%s", name, time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("%s failed: %v", name, err)
	}
}

// environWithout returns the environment minus variables with a prefix, so
// that a developer's own AWS settings cannot leak into the test.
func environWithout(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return env
}

// TestCompatibilitySTS runs compat/test_sts.py: GetCallerIdentity with
// boto3 and `aws sts get-caller-identity --endpoint-url`, as a new user
// checks their setup.
func TestCompatibilitySTS(t *testing.T) {
	if testing.Short() {
		t.Skip("compatibility tests start python and the aws CLI; skipped with -short")
	}
	requireTool(t, "python3", "-c", "import boto3")
	requireTool(t, "aws", "--version")
	srv := servertest.Start(t, func(c *server.Config) {
		c.RootAccessKeyID, c.RootSecretAccessKey = "", "" // generate, as on a first start
		c.AccountID = "000000000000"
	})
	runCompatScript(t, srv, "test_sts.py")
}
