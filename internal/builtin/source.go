package builtin

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pipelined/pipelined/internal/wire"
)

// runSource runs a Source/AWS/S3/1 action: it copies the source object
// (S3Bucket/S3ObjectKey, the version a sourceRevisions override names, if
// any) to the action's output artifact, and reports the object's
// revision (VersionId, else ETag) and its variables.
func (r *Runner) runSource(ctx context.Context, j *job) result {
	bucket, key := j.config["S3Bucket"], j.config["S3ObjectKey"]
	if bucket == "" || key == "" {
		return failure(wire.FailureTypeConfigurationError, "S3Bucket and S3ObjectKey must both be set")
	}
	out, res := outputLocation(j)
	if res != nil {
		return *res
	}
	in := &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
	if v, err := r.sourceOverride(ctx, j); err != nil {
		return failure(wire.FailureTypeJobFailed, "Could not read the execution's source revisions: %v", err)
	} else if v != "" {
		in.VersionId = aws.String(v)
	}
	body, obj, fail := r.getObject(ctx, in, "read the source object")
	if fail != nil {
		return *fail
	}
	defer body.Close()
	if ensure := r.o.EnsureArtifactBucket; ensure != nil {
		if err := ensure(ctx, out.BucketName); err != nil {
			return failure(wire.FailureTypeJobFailed, "Could not create the artifact bucket %s: %v", out.BucketName, err)
		}
	}
	_, err := r.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(out.BucketName), Key: aws.String(out.ObjectKey),
		Body: body, ContentLength: aws.Int64(body.size), ContentType: aws.String("application/zip"),
	})
	if err != nil {
		return s3Failure(err, "write the output artifact to the artifact store at", out.BucketName, out.ObjectKey)
	}
	vars := map[string]string{"BucketName": bucket, "ObjectKey": key, "ETag": unquote(aws.ToString(obj.ETag))}
	if v := aws.ToString(obj.VersionId); v != "" && v != "null" {
		vars["VersionId"] = v
	}
	rev := revisionOf(obj.VersionId, obj.ETag)
	summary := fmt.Sprintf("Read s3://%s/%s (revision %s, %d bytes)", bucket, key, rev, body.size)
	if in.VersionId != nil && aws.ToString(obj.VersionId) != *in.VersionId {
		// A store without versions answers the latest object.
		summary += fmt.Sprintf("; the store does not keep versions, so the requested version %s was ignored", *in.VersionId)
	}
	return result{ok: true, revision: rev, vars: vars, summary: summary}
}

// sourceOverride is the revision StartPipelineExecution's sourceRevisions
// named for this action ("" for none): a version id of the object.
func (r *Runner) sourceOverride(ctx context.Context, j *job) (string, error) {
	x, err := r.eng.Execution(ctx, j.Pipeline, j.ExecutionID)
	if err != nil {
		return "", err
	}
	return x.SourceOverrides[j.doc.Action], nil
}

// outputLocation is where the action's (one) output artifact goes.
func outputLocation(j *job) (*wire.S3ArtifactLocation, *result) {
	if len(j.data.OutputArtifacts) != 1 || j.data.OutputArtifacts[0].Location == nil || j.data.OutputArtifacts[0].Location.S3Location == nil ||
		j.data.OutputArtifacts[0].Location.S3Location.BucketName == "" {
		res := failure(wire.FailureTypeConfigurationError, "The action needs one output artifact in an S3 artifact store")
		return nil, &res
	}
	return j.data.OutputArtifacts[0].Location.S3Location, nil
}

// inputLocation is where the action's (one) input artifact is.
func inputLocation(j *job) (*wire.S3ArtifactLocation, *result) {
	if len(j.data.InputArtifacts) != 1 || j.data.InputArtifacts[0].Location == nil || j.data.InputArtifacts[0].Location.S3Location == nil ||
		j.data.InputArtifacts[0].Location.S3Location.BucketName == "" {
		res := failure(wire.FailureTypeConfigurationError, "The action needs one input artifact in an S3 artifact store")
		return nil, &res
	}
	return j.data.InputArtifacts[0].Location.S3Location, nil
}
