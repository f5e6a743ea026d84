package builtin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/connections"
	"github.com/pipelined/pipelined/internal/gitsource"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// GitSourceKey is the Git source action: a repository read through a
// CodeConnections connection.
var GitSourceKey = actiontypes.Key{Category: "Source", Owner: "AWS", Provider: "CodeStarSourceConnection", Version: "1"}

// Connections resolves a pipeline's ConnectionArn (connections.Service).
type Connections interface {
	Resolve(ctx context.Context, arn string) (connections.Resolved, error)
}

// maxCommitMessage bounds the CommitMessage output variable (characters).
const maxCommitMessage = 4096

// runGitSource runs a Source/AWS/CodeStarSourceConnection/1 action: it
// fetches the branch into the repository's mirror and writes the tree of
// its head (or of the commit a sourceRevisions COMMIT_ID names) to the
// output artifact as a zip (CODE_ZIP). Its revision is the commit id.
func (r *Runner) runGitSource(ctx context.Context, j *job) result {
	if r.o.Connections == nil || r.o.GitCache == nil {
		return failure(wire.FailureTypeConfigurationError, "This server runs no Git sources (no connections service or mirror cache configured)")
	}
	arn, repoID, branch := j.config["ConnectionArn"], j.config["FullRepositoryId"], j.config["BranchName"]
	if arn == "" || repoID == "" || branch == "" {
		return failure(wire.FailureTypeConfigurationError, "ConnectionArn, FullRepositoryId and BranchName must all be set")
	}
	switch f := j.config["OutputArtifactFormat"]; f {
	case "", "CODE_ZIP":
	case "CODEBUILD_CLONE_REF":
		return failure(wire.FailureTypeConfigurationError, "OutputArtifactFormat CODEBUILD_CLONE_REF is not supported by pipelined yet: use CODE_ZIP")
	default:
		return failure(wire.FailureTypeConfigurationError, "OutputArtifactFormat '%s' is not CODE_ZIP or CODEBUILD_CLONE_REF", f)
	}
	out, res := outputLocation(j)
	if res != nil {
		return *res
	}
	conn, err := r.o.Connections.Resolve(ctx, arn)
	if err != nil {
		if _, ok := wire.AsError(err); ok || errors.Is(err, store.ErrNotFound) || errors.Is(err, connections.ErrNotAvailable) {
			return failure(wire.FailureTypeConfigurationError, "%v", err)
		}
		return failure(wire.FailureTypeJobFailed, "Could not read connection %s: %v", arn, err)
	}
	commit, err := r.sourceOverride(ctx, j)
	if err != nil {
		return failure(wire.FailureTypeJobFailed, "Could not read the execution's source revisions: %v", err)
	}
	repo := gitsource.Repo{Conn: conn, FullRepositoryID: repoID}
	f, err := r.o.GitCache.Fetch(ctx, repo, branch, commit)
	if err != nil {
		ft := wire.FailureTypeJobFailed
		if errors.Is(err, gitsource.ErrAuthentication) || errors.Is(err, gitsource.ErrRepositoryNotFound) || errors.Is(err, gitsource.ErrBranchNotFound) {
			ft = wire.FailureTypeConfigurationError
		}
		return failure(ft, "%v", err)
	}
	defer f.Close()
	tmp, err := os.CreateTemp(r.o.TempDir, "pipelined-git-*.zip")
	if err != nil {
		return failure(wire.FailureTypeJobFailed, "Could not create a temporary file: %v", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	files, err := gitsource.ZipCommit(f.Commit, tmp, gitsource.ZipLimits{MaxBytes: r.o.MaxExtractBytes})
	if err != nil {
		return failure(wire.FailureTypeJobFailed, "Could not zip commit %s of %s: %v", f.Commit.Hash, repoID, err)
	}
	size, err := tmp.Seek(0, 1)
	if err == nil {
		_, err = tmp.Seek(0, 0)
	}
	if err != nil {
		return failure(wire.FailureTypeJobFailed, "Could not read the zip back: %v", err)
	}
	f.Close() // the mirror is free for others while the zip uploads
	if ensure := r.o.EnsureArtifactBucket; ensure != nil {
		if err := ensure(ctx, out.BucketName); err != nil {
			return failure(wire.FailureTypeJobFailed, "Could not create the artifact bucket %s: %v", out.BucketName, err)
		}
	}
	_, err = r.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(out.BucketName), Key: aws.String(out.ObjectKey),
		Body: tmp, ContentLength: aws.Int64(size), ContentType: aws.String("application/zip"),
	})
	if err != nil {
		return s3Failure(err, "write the output artifact to the artifact store at", out.BucketName, out.ObjectKey)
	}
	c := f.Commit
	msg := strings.TrimRight(c.Message, "\n")
	if rs := []rune(msg); len(rs) > maxCommitMessage {
		msg = string(rs[:maxCommitMessage])
	}
	vars := map[string]string{
		"CommitId": c.Hash.String(), "CommitMessage": msg, "AuthorDate": c.Author.When.UTC().Format(time.RFC3339),
		"BranchName": branch, "FullRepositoryName": repoID, "ConnectionArn": arn,
		"AuthorDisplayName": c.Author.Name, "AuthorId": c.Author.Email,
	}
	summary := fmt.Sprintf("%s: %s", c.Hash.String()[:12], firstLine(msg))
	r.log.Info("git source fetched", "pipeline", j.Pipeline, "connection", arn, "repository", repoID, "branch", branch, "commit", c.Hash.String(), "files", files, "zip_bytes", size)
	return result{ok: true, revision: c.Hash.String(), vars: vars, summary: truncate(summary, 2048)}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
