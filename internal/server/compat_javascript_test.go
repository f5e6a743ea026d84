package server_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/server"
	"github.com/pipelined/pipelined/internal/server/servertest"
)

// jsInstallHint says how to get what TestCompatibilityJS needs.
const jsInstallHint = "the AWS SDK for JavaScript v3 compatibility test needs Node.js 20+ and its pinned packages (the AWS SDK clients and fflate): " +
	"npm ci --prefix compat/js --no-audit --no-fund"

// requireJSCompat skips (fails in CI, like requireTool) unless node and
// compat/js/node_modules are there; it returns the path of compat/js.
func requireJSCompat(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../../compat/js")
	if err != nil {
		t.Fatal(err)
	}
	missing := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf(format+"; required in CI: "+jsInstallHint, args...)
		}
		t.Skipf(format+"; "+jsInstallHint, args...)
	}
	if err := exec.Command("node", "--version").Run(); err != nil {
		missing("node is not available (%v)", err)
	}
	for _, pkg := range []string{"@aws-sdk/client-codepipeline", "@aws-sdk/client-s3", "fflate"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			missing("%s is not installed in compat/js/node_modules", pkg)
		}
	}
	// Read the scripts and the lock file, so that go test's cache knows the
	// test depends on them (it tracks the files the test opens, not node's).
	for _, name := range []string{"test_job_worker.mjs", "zip.mjs", "package.json", "package-lock.json"} {
		if _, err := os.ReadFile(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestCompatibilityJS runs compat/js/test_job_worker.mjs: a custom-action job
// worker written with the AWS SDK for JavaScript v3 (CodePipelineClient and
// S3Client, configured from the environment the README gives), moving
// artifacts through the embedded S3 store with its job credentials and the
// SDK's default flexible checksums, reporting success and failure, and
// checking that the server's errors deserialize to the SDK's exception
// classes.
func TestCompatibilityJS(t *testing.T) {
	if testing.Short() {
		t.Skip("compatibility tests start node; skipped with -short")
	}
	dir := requireJSCompat(t)
	srv := servertest.Start(t, func(c *server.Config) {
		c.RootAccessKeyID, c.RootSecretAccessKey = "", "" // generate, as on a first start
		c.AccountID = "000000000000"
		c.SourcePollInterval = -1       // the pipeline's source does not poll; nothing else should either
		c.JobPollWait = 1 * time.Second // the worker's poll for another queue answers (empty) within a second
	})
	cmd := exec.Command("node", "--test-reporter=spec", filepath.Join(dir, "test_job_worker.mjs"))
	cmd.Dir = dir
	cmd.Env = append(environWithout("AWS_"),
		"AWS_ENDPOINT_URL="+srv.URL,
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(srv.DataDir, "credentials"),
		"AWS_CONFIG_FILE=/dev/null",
		// The JS SDK reads its region from AWS_REGION only (not AWS_DEFAULT_REGION).
		"AWS_REGION=us-east-1", "AWS_DEFAULT_REGION=us-east-1",
		"AWS_RETRY_MODE=standard", "AWS_MAX_ATTEMPTS=1",
		"NO_COLOR=1",
	)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("test_job_worker.mjs output (%s):\n%s", time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("the AWS SDK for JavaScript v3 compatibility test failed: %v", err)
	}
}
