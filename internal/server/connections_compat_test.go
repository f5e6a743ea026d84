package server_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pipelined/pipelined/internal/server"
	"github.com/pipelined/pipelined/internal/server/servertest"
)

// TestCompatibilityConnections runs compat/test_connections.py: boto3's
// codeconnections and codestar-connections clients and the aws CLI manage
// connections and hosts.
func TestCompatibilityConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("compatibility tests start python and the aws CLI; skipped with -short")
	}
	requireTool(t, "python3", "-c", "import boto3")
	requireTool(t, "aws", "--version")
	srv := servertest.Start(t, func(c *server.Config) {
		c.RootAccessKeyID, c.RootSecretAccessKey = "", "" // generated, as on a first start
	})
	script, _ := filepath.Abs("../../compat/test_connections.py")
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
