package server_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/codepipeline"

	"github.com/pipelined/pipelined/internal/server"
	"github.com/pipelined/pipelined/internal/server/servertest"
)

// consoleE2EHint says how to get what TestConsoleBrowser needs.
const consoleE2EHint = "the console's browser test needs Debian's chromium (apt-get install chromium), Node.js 20+ and playwright-core: " +
	"npm ci --prefix internal/console/e2e --no-audit --no-fund (.ci/run does both)"

// TestConsoleBrowser runs internal/console/e2e/console.test.mjs: real
// headless Chromium, driven by playwright-core, signs in, watches a
// pipeline run live, approves it in the Review dialog, releases and stops
// an execution, disables a transition, and checks what a viewer may not
// do. Screenshots of the main pages are kept in
// internal/console/e2e/screenshots and checked here for a real render.
func TestConsoleBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser test starts chromium; skipped with -short")
	}
	dir, err := filepath.Abs("../console/e2e")
	if err != nil {
		t.Fatal(err)
	}
	missing := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf(format+"; required in CI: "+consoleE2EHint, args...)
		}
		t.Skipf(format+"; "+consoleE2EHint, args...)
	}
	chromium := os.Getenv("PIPELINED_TEST_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		missing("chromium is not at %s", chromium)
	}
	if err := exec.Command("node", "--version").Run(); err != nil {
		missing("node is not available (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core", "package.json")); err != nil {
		missing("playwright-core is not installed in internal/console/e2e/node_modules")
	}
	for _, name := range []string{"console.test.mjs", "package.json", "package-lock.json"} {
		if _, err := os.ReadFile(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}

	srv := servertest.Start(t, func(c *server.Config) { c.JobPollWait = time.Second })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := srv.Client()
	registerTestTypes(t, c)
	go (&worker{c: c}).run(ctx, t)
	p := runPipeline("storefront", "")
	p.Stages[2].Actions[0].Configuration = map[string]string{"CustomData": "Check the release notes before approving"}
	if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: p}); err != nil {
		t.Fatal(err)
	}
	operatorPW := createConsoleUser(t, srv, "olga", "operator")
	viewerPW := createConsoleUser(t, srv, "vic", "viewer")

	shots := filepath.Join(dir, "screenshots")
	_ = os.RemoveAll(shots)
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	tctx, tcancel := context.WithTimeout(ctx, 4*time.Minute)
	defer tcancel()
	cmd := exec.CommandContext(tctx, "node", "--test", "--test-concurrency=1", "--test-reporter=spec", "console.test.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"CONSOLE_URL="+srv.URL, "CONSOLE_PIPELINE=storefront", "SCREENSHOT_DIR="+shots, "CHROMIUM="+chromium,
		"OPERATOR_NAME=olga", "OPERATOR_PASSWORD="+operatorPW, "VIEWER_NAME=vic", "VIEWER_PASSWORD="+viewerPW, "NO_COLOR=1")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("console.test.mjs (%s):\n%s", time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("the console's browser test failed: %v", err)
	}
	for _, name := range []string{"pipelines", "pipeline", "review", "pipeline-after", "execution", "approvals", "pipeline-viewer-phone"} {
		fi, err := os.Stat(filepath.Join(shots, name+".png"))
		if err != nil {
			t.Errorf("screenshot %s: %v", name, err)
			continue
		}
		if fi.Size() < 5000 {
			t.Errorf("screenshot %s is %d bytes: an empty render?", name, fi.Size())
		}
	}
}
