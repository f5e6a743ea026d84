package server_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
