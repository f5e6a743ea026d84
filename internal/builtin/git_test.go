package builtin_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/subtle"
	"io/fs"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	cptypes "github.com/aws/aws-sdk-go-v2/service/codepipeline/types"

	"github.com/pipelined/pipelined/internal/connections"
	cc "github.com/pipelined/pipelined/internal/connwire/codeconnections"
	"github.com/pipelined/pipelined/internal/server"
	"github.com/pipelined/pipelined/internal/server/servertest"
)

var gitSource = &cptypes.ActionTypeId{Category: cptypes.ActionCategorySource, Owner: cptypes.ActionOwnerAws, Provider: aws.String("CodeStarSourceConnection"), Version: aws.String("1")}

// gitRepo is a real repository served by git http-backend through
// net/http/cgi, with a work tree to push from.
type gitRepo struct {
	t    *testing.T
	url  string // the server's base URL (a host's ProviderEndpoint)
	work string
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=Ada Lovelace", "-c", "user.email=ada@example.com", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir, "GIT_AUTHOR_DATE=2024-05-01T10:00:00Z", "GIT_COMMITTER_DATE=2024-05-01T10:00:00Z")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// newGitServer serves <root>/org/app.git; with a token, every request
// must carry it as the basic-auth password (checked in constant time),
// as GitHub, GitLab and Gitea check theirs.
func newGitServer(t *testing.T, token string) *gitRepo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("git is required in CI")
		}
		t.Skip("git is not installed")
	}
	root, work := t.TempDir(), t.TempDir()
	bare := filepath.Join(root, "org", "app.git")
	if err := os.MkdirAll(bare, 0o755); err != nil {
		t.Fatal(err)
	}
	git(t, bare, "init", "--bare", "-q")
	git(t, work, "init", "-q")
	git(t, work, "remote", "add", "origin", bare)
	backend := &cgi.Handler{
		Path: filepath.Join(git(t, work, "--exec-path"), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token != "" {
			_, pw, ok := r.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(pw), []byte(token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &gitRepo{t: t, url: srv.URL, work: work}
}

// commit writes files (a "->" prefix makes a symlink; a "+x " prefix an
// executable), commits and pushes branch; it returns the commit id.
func (g *gitRepo) commit(branch, msg string, files map[string]string) string {
	t := g.t
	t.Helper()
	git(t, g.work, "checkout", "-q", "-B", branch) // from the current commit
	for name, body := range files {
		p := filepath.Join(g.work, name)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		_ = os.Remove(p)
		var err error
		switch {
		case strings.HasPrefix(body, "->"):
			err = os.Symlink(strings.TrimPrefix(body, "->"), p)
		case strings.HasPrefix(body, "+x "):
			err = os.WriteFile(p, []byte(strings.TrimPrefix(body, "+x ")), 0o755)
		default:
			err = os.WriteFile(p, []byte(body), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	git(t, g.work, "add", "-A")
	git(t, g.work, "commit", "-q", "-m", msg)
	git(t, g.work, "push", "-q", "origin", "HEAD:refs/heads/"+branch)
	return git(t, g.work, "rev-parse", "HEAD")
}

func gitPipeline(name, artifacts, connArn, branch, site string) *cptypes.PipelineDeclaration {
	return &cptypes.PipelineDeclaration{
		Name: aws.String(name), RoleArn: aws.String("arn:aws:iam::123456789012:role/r"),
		ArtifactStore: &cptypes.ArtifactStore{Type: cptypes.ArtifactStoreTypeS3, Location: aws.String(artifacts)},
		Stages: []cptypes.StageDeclaration{
			{Name: aws.String("Source"), Actions: []cptypes.ActionDeclaration{{
				Name: aws.String("Code"), ActionTypeId: gitSource, Namespace: aws.String("SourceVariables"),
				Configuration:   map[string]string{"ConnectionArn": connArn, "FullRepositoryId": "org/app", "BranchName": branch, "OutputArtifactFormat": "CODE_ZIP"},
				OutputArtifacts: []cptypes.OutputArtifact{{Name: aws.String("Src")}},
			}}},
			{Name: aws.String("Deploy"), Actions: []cptypes.ActionDeclaration{
				{Name: aws.String("Bundle"), ActionTypeId: s3Deploy, InputArtifacts: []cptypes.InputArtifact{{Name: aws.String("Src")}},
					Configuration: map[string]string{"BucketName": site, "Extract": "false", "ObjectKey": "bundles/#{SourceVariables.CommitId}.zip"}},
			}},
		},
	}
}

// connectionOn creates a host at the git server and a connection on it,
// with the given credentials (nil: none set, the connection stays PENDING).
func connectionOn(t *testing.T, srv *servertest.Instance, url string, creds *connections.Credentials) string {
	t.Helper()
	ctx := context.Background()
	v := srv.Connections().View(connections.ServiceCodeConnections)
	h, err := v.CreateHost(ctx, &cc.CreateHostInput{Name: "test-forge", ProviderType: cc.ProviderTypeGitLabSelfManaged, ProviderEndpoint: url})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.CreateConnection(ctx, &cc.CreateConnectionInput{ConnectionName: "forge", HostArn: h.HostArn})
	if err != nil {
		t.Fatal(err)
	}
	if creds != nil {
		if _, err := srv.Connections().SetCredentials(ctx, c.ConnectionArn, *creds); err != nil {
			t.Fatal(err)
		}
	}
	return c.ConnectionArn
}

func latestExecution(t *testing.T, c *codepipeline.Client, name string) cptypes.PipelineExecutionSummary {
	t.Helper()
	var xs []cptypes.PipelineExecutionSummary
	for i := 0; i < 200 && len(xs) == 0; i++ {
		xs = executions(t, c, name)
	}
	if len(xs) == 0 {
		t.Fatal("no execution")
	}
	return xs[0]
}

func sourceVariables(t *testing.T, c *codepipeline.Client, name, execID string) map[string]string {
	t.Helper()
	out, err := c.ListActionExecutions(context.Background(), &codepipeline.ListActionExecutionsInput{
		PipelineName: aws.String(name), Filter: &cptypes.ActionExecutionFilter{PipelineExecutionId: aws.String(execID)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range out.ActionExecutionDetails {
		if aws.ToString(d.ActionName) == "Code" && d.Output != nil {
			return d.Output.OutputVariables
		}
	}
	return nil
}

func TestGitSourceEndToEnd(t *testing.T) {
	const token = "glpat-test-token-0123456789"
	repo := newGitServer(t, token)
	first := repo.commit("main", "first commit\n\nwith a body", map[string]string{
		"README.md": "hello\n", "bin/run.sh": "+x #!/bin/sh\necho run\n", "link": "->README.md",
	})
	env := embeddedEnv()
	srv, c := startServer(t, env, func(c *server.Config) { c.SourcePollInterval = -1 })
	s3c := env.client(srv)
	site := bucket(t, s3c, "site", false)
	conn := connectionOn(t, srv, repo.url, &connections.Credentials{Kind: connections.KindToken, Token: token})
	ctx := context.Background()
	if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: gitPipeline("git-app", "artifacts-git", conn, "main", site)}); err != nil {
		t.Fatal(err)
	}
	// CreatePipeline starts the first execution.
	x := latestExecution(t, c, "git-app")
	if st := waitDone(t, c, "git-app", aws.ToString(x.PipelineExecutionId)); st != cptypes.PipelineExecutionStatusSucceeded {
		code, msg := actionError(t, c, "git-app", "Source", "Code")
		t.Fatalf("first execution %s: %s %s", st, code, msg)
	}
	got, err := c.GetPipelineExecution(ctx, &codepipeline.GetPipelineExecutionInput{PipelineName: aws.String("git-app"), PipelineExecutionId: x.PipelineExecutionId})
	if err != nil {
		t.Fatal(err)
	}
	if revs := got.PipelineExecution.ArtifactRevisions; len(revs) != 1 || aws.ToString(revs[0].RevisionId) != first {
		t.Fatalf("artifactRevisions = %+v, want commit %s", revs, first)
	}
	vars := sourceVariables(t, c, "git-app", aws.ToString(x.PipelineExecutionId))
	for k, want := range map[string]string{
		"CommitId": first, "CommitMessage": "first commit\n\nwith a body", "BranchName": "main", "FullRepositoryName": "org/app",
		"ConnectionArn": conn, "AuthorDate": "2024-05-01T10:00:00Z", "AuthorDisplayName": "Ada Lovelace", "AuthorId": "ada@example.com",
	} {
		if vars[k] != want {
			t.Errorf("output variable %s = %q, want %q", k, vars[k], want)
		}
	}
	// The artifact: the tree at the commit, modes and links kept.
	zr, err := zip.NewReader(bytes.NewReader([]byte(get(t, s3c, site, "bundles/"+first+".zip").body)), int64(len(get(t, s3c, site, "bundles/"+first+".zip").body)))
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]*zip.File{}
	for _, f := range zr.File {
		entries[f.Name] = f
	}
	if len(entries) != 3 {
		t.Fatalf("zip entries: %v", entries)
	}
	if m := entries["bin/run.sh"].Mode(); m.Perm() != 0o755 {
		t.Errorf("bin/run.sh mode %v, want 0755", m)
	}
	if m := entries["README.md"].Mode(); m.Perm() != 0o644 {
		t.Errorf("README.md mode %v", m)
	}
	if m := entries["link"].Mode(); m&fs.ModeSymlink == 0 {
		t.Errorf("link mode %v, want a symlink", m)
	} else if r, _ := entries["link"].Open(); r != nil {
		var b bytes.Buffer
		_, _ = b.ReadFrom(r)
		if b.String() != "README.md" {
			t.Errorf("link target %q", b.String())
		}
	}

	// A push, then a run: the new commit. One mirror on disk, named by hash.
	second := repo.commit("main", "second", map[string]string{"README.md": "hello again\n"})
	start, err := c.StartPipelineExecution(ctx, &codepipeline.StartPipelineExecutionInput{Name: aws.String("git-app")})
	if err != nil {
		t.Fatal(err)
	}
	if st := waitDone(t, c, "git-app", aws.ToString(start.PipelineExecutionId)); st != cptypes.PipelineExecutionStatusSucceeded {
		t.Fatalf("second execution %s", st)
	}
	if v := sourceVariables(t, c, "git-app", aws.ToString(start.PipelineExecutionId)); v["CommitId"] != second {
		t.Fatalf("second run read %s, want %s", v["CommitId"], second)
	}
	mirrors, _ := filepath.Glob(filepath.Join(srv.DataDir, server.GitDir, "*"))
	if len(mirrors) != 1 || !strings.HasSuffix(mirrors[0], ".git") || strings.Contains(mirrors[0], "127.0.0.1") || len(filepath.Base(mirrors[0])) != 64+4 {
		t.Fatalf("mirrors: %v", mirrors)
	}

	// sourceRevisions COMMIT_ID runs a given commit.
	start, err = c.StartPipelineExecution(ctx, &codepipeline.StartPipelineExecutionInput{Name: aws.String("git-app"),
		SourceRevisions: []cptypes.SourceRevisionOverride{{ActionName: aws.String("Code"), RevisionType: cptypes.SourceRevisionTypeCommitId, RevisionValue: aws.String(first)}}})
	if err != nil {
		t.Fatal(err)
	}
	if st := waitDone(t, c, "git-app", aws.ToString(start.PipelineExecutionId)); st != cptypes.PipelineExecutionStatusSucceeded {
		t.Fatalf("override execution %s", st)
	}
	if v := sourceVariables(t, c, "git-app", aws.ToString(start.PipelineExecutionId)); v["CommitId"] != first {
		t.Fatalf("override run read %s, want %s", v["CommitId"], first)
	}
	if strings.Contains(srv.Logs(), token) {
		t.Fatal("the token appears in the server's log")
	}
}

func TestGitSourceErrors(t *testing.T) {
	const token = "secret-token-abcdef"
	repo := newGitServer(t, token)
	repo.commit("main", "init", map[string]string{"a": "a"})
	public := newGitServer(t, "")
	public.commit("main", "init", map[string]string{"b": "b"})
	env := embeddedEnv()
	srv, c := startServer(t, env, func(c *server.Config) { c.SourcePollInterval = -1 })
	site := bucket(t, env.client(srv), "site", false)
	ctx := context.Background()
	for _, tc := range []struct {
		name, url, branch string
		creds             *connections.Credentials
		want              string // "" for success
	}{
		{"public repository without credentials", public.url, "main", &connections.Credentials{Kind: connections.KindNone}, ""},
		{"wrong token", repo.url, "main", &connections.Credentials{Kind: connections.KindToken, Token: "wrong-token-value"}, "authentication failed"},
		{"no credentials for a private repository", repo.url, "main", &connections.Credentials{Kind: connections.KindNone}, "authentication failed"},
		{"missing branch", repo.url, "nope", &connections.Credentials{Kind: connections.KindToken, Token: token}, "branch nope does not exist"},
		{"pending connection", repo.url, "main", nil, "not AVAILABLE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := connectionOn(t, srv, tc.url, tc.creds)
			name := "p-" + strings.ReplaceAll(tc.name, " ", "-")
			if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: gitPipeline(name, "artifacts-git", conn, tc.branch, site)}); err != nil {
				t.Fatal(err)
			}
			x := latestExecution(t, c, name)
			st := waitDone(t, c, name, aws.ToString(x.PipelineExecutionId))
			code, msg := actionError(t, c, name, "Source", "Code")
			if tc.want == "" {
				if st != cptypes.PipelineExecutionStatusSucceeded {
					t.Fatalf("status %s: %s %s", st, code, msg)
				}
				return
			}
			if st != cptypes.PipelineExecutionStatusFailed || !strings.Contains(msg, tc.want) || !strings.Contains(msg, conn) {
				t.Fatalf("status %s, error %s %q; want a failure naming %q and the connection", st, code, msg, tc.want)
			}
			if strings.Contains(msg, token) || strings.Contains(msg, "wrong-token-value") {
				t.Fatalf("the message shows a token: %s", msg)
			}
		})
	}
}
