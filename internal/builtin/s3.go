package builtin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/pipelined/pipelined/internal/wire"
)

func newS3Client(o Options) *s3.Client {
	so := s3.Options{
		Region:      o.Region,
		Credentials: o.Credentials,
		// Checksums only where S3 requires them: third-party stores vary in
		// what they accept of the newer flexible-checksum headers.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if o.Endpoint != "" {
		so.BaseEndpoint = aws.String(strings.TrimRight(o.Endpoint, "/"))
		so.UsePathStyle = true
	}
	if o.HTTPClient != nil {
		so.HTTPClient = o.HTTPClient
	}
	return s3.New(so)
}

// s3Failure turns an S3 error into an action failure that says what was
// being done, on which object, and why.
func s3Failure(err error, doing, bucket, key string) result {
	where := "s3://" + bucket
	if key != "" {
		where += "/" + key
	}
	code, msg := "", err.Error()
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code, msg = ae.ErrorCode(), ae.ErrorMessage()
	}
	var re *smithyhttp.ResponseError
	status := 0
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	why := ""
	typ := wire.FailureTypeJobFailed
	switch {
	case code == "NoSuchBucket":
		why, typ = "the bucket does not exist", wire.FailureTypeConfigurationError
	case code == "NoSuchKey" || (code == "NotFound" && key != "") || (status == http.StatusNotFound && code == ""):
		why = "the object does not exist"
	case code == "NoSuchVersion" || code == "InvalidVersionId":
		why, typ = "the object has no such version", wire.FailureTypeRevisionUnavailable
	case code == "AccessDenied" || code == "Forbidden" || code == "InvalidAccessKeyId" ||
		code == "SignatureDoesNotMatch" || code == "AllAccessDisabled" || status == http.StatusForbidden:
		why, typ = "access denied", wire.FailureTypePermissionError
	}
	switch {
	case why != "" && code != "":
		return failure(typ, "Could not %s %s: %s (%s: %s)", doing, where, why, code, msg)
	case why != "":
		return failure(typ, "Could not %s %s: %s", doing, where, why)
	case code != "":
		return failure(typ, "Could not %s %s: %s: %s", doing, where, code, msg)
	}
	return failure(typ, "Could not %s %s: %v", doing, where, err)
}

// inMemoryLimit is the size up to which a body is held in memory rather
// than in a temporary file.
const inMemoryLimit = 8 << 20

// spooled is a body read to the end, seekable (so that requests can be
// signed and retried), in memory or in a temporary file.
type spooled struct {
	io.ReadSeeker
	io.ReaderAt
	size int64
	file *os.File
}

func (s *spooled) Close() {
	if s.file != nil {
		s.file.Close()
		os.Remove(s.file.Name())
	}
}

// errTooLarge is returned by spool when a body exceeds its limit.
var errTooLarge = errors.New("too large")

// spool reads src to the end; size is its expected size (-1: unknown) and
// limit the most it may hold.
func (r *Runner) spool(ctx context.Context, src io.Reader, size, limit int64) (*spooled, error) {
	src = io.LimitReader(ctxReader{ctx, src}, limit+1)
	if size >= 0 && size <= inMemoryLimit {
		b, err := io.ReadAll(src)
		if err != nil {
			return nil, err
		}
		if int64(len(b)) > limit {
			return nil, errTooLarge
		}
		br := bytes.NewReader(b)
		return &spooled{ReadSeeker: br, ReaderAt: br, size: int64(len(b))}, nil
	}
	f, err := os.CreateTemp(r.o.TempDir, "pipelined-s3-*")
	if err != nil {
		return nil, fmt.Errorf("temporary file: %w", err)
	}
	sp := &spooled{ReadSeeker: f, ReaderAt: f, file: f}
	n, err := io.Copy(f, src)
	if err == nil && n > limit {
		err = errTooLarge
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		sp.Close()
		return nil, err
	}
	sp.size = n
	return sp, nil
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// getObject downloads an object into a spooled body.
func (r *Runner) getObject(ctx context.Context, in *s3.GetObjectInput, doing string) (*spooled, *s3.GetObjectOutput, *result) {
	out, err := r.s3.GetObject(ctx, in)
	if err != nil {
		res := s3Failure(err, doing, aws.ToString(in.Bucket), aws.ToString(in.Key))
		return nil, nil, &res
	}
	defer out.Body.Close()
	size := int64(-1)
	if out.ContentLength != nil {
		size = *out.ContentLength
	}
	body, err := r.spool(ctx, out.Body, size, 5<<40)
	if err != nil {
		res := failure(wire.FailureTypeJobFailed, "Could not %s s3://%s/%s: %v", doing, aws.ToString(in.Bucket), aws.ToString(in.Key), err)
		return nil, nil, &res
	}
	return body, out, nil
}

// unquote strips the quotes S3 puts around ETags.
func unquote(etag string) string { return strings.Trim(etag, `"`) }

// revisionOf is the revision of an object: its version id when the bucket
// is versioned, else its ETag.
func revisionOf(versionID, etag *string) string {
	if v := aws.ToString(versionID); v != "" && v != "null" {
		return v
	}
	return unquote(aws.ToString(etag))
}
