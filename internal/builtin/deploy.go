package builtin

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"mime"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pipelined/pipelined/internal/wire"
)

// runDeploy runs a Deploy/AWS/S3/1 action: the input artifact goes to
// BucketName, unzipped under the ObjectKey prefix (Extract=true) or as the
// one object ObjectKey (Extract=false). CacheControl is set on every object
// written; CannedACL and KMSEncryptionKeyARN are not applied.
func (r *Runner) runDeploy(ctx context.Context, j *job) result {
	bucket, objectKey := j.config["BucketName"], j.config["ObjectKey"]
	if bucket == "" {
		return failure(wire.FailureTypeConfigurationError, "BucketName must be set")
	}
	var extract bool
	switch strings.ToLower(strings.TrimSpace(j.config["Extract"])) {
	case "true":
		extract = true
	case "false":
		if objectKey == "" {
			return failure(wire.FailureTypeConfigurationError, "ObjectKey must be set when Extract is false")
		}
	default:
		return failure(wire.FailureTypeConfigurationError, "Extract must be true or false, not '%s'", j.config["Extract"])
	}
	in, res := inputLocation(j)
	if res != nil {
		return *res
	}
	body, _, fail := r.getObject(ctx, &s3.GetObjectInput{Bucket: aws.String(in.BucketName), Key: aws.String(in.ObjectKey)}, "read the input artifact from the artifact store at")
	if fail != nil {
		return *fail
	}
	defer body.Close()
	cache := j.config["CacheControl"]
	if !extract {
		ct := contentType(objectKey)
		if ct == "application/octet-stream" {
			ct = "application/zip"
		}
		if err := r.put(ctx, bucket, objectKey, body, body.size, ct, cache); err != nil {
			return s3Failure(err, "deploy to", bucket, objectKey)
		}
		return result{ok: true, summary: fmt.Sprintf("Deployed the artifact (%d bytes) to s3://%s/%s", body.size, bucket, objectKey)}
	}
	files, err := r.planExtract(body, body.size)
	if err != nil {
		return failure(wire.FailureTypeJobFailed, "Could not extract the input artifact %s: %v", j.data.InputArtifacts[0].Name, err)
	}
	prefix := strings.TrimSuffix(objectKey, "/")
	var total int64
	for _, f := range files {
		key := f.name
		if prefix != "" {
			key = prefix + "/" + f.name
		}
		if err := r.putEntry(ctx, bucket, key, f.file, cache); err != nil {
			var ee *entryError
			if errors.As(err, &ee) {
				return failure(wire.FailureTypeJobFailed, "Could not extract %s from the input artifact %s: %v", f.name, j.data.InputArtifacts[0].Name, ee.err)
			}
			return s3Failure(err, "deploy to", bucket, key)
		}
		total += int64(f.file.UncompressedSize64)
	}
	where := "s3://" + bucket + "/" + prefix
	return result{ok: true, summary: fmt.Sprintf("Deployed %d files (%d bytes) to %s", len(files), total, where)}
}

func (r *Runner) put(ctx context.Context, bucket, key string, body *spooled, size int64, ct, cache string) error {
	in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: body, ContentLength: aws.Int64(size), ContentType: aws.String(ct)}
	if cache != "" {
		in.CacheControl = aws.String(cache)
	}
	_, err := r.s3.PutObject(ctx, in)
	return err
}

// entryError is a failure to read a zip entry (rather than to write it).
type entryError struct{ err error }

func (e *entryError) Error() string { return e.err.Error() }

func (r *Runner) putEntry(ctx context.Context, bucket, key string, f *zip.File, cache string) error {
	rc, err := f.Open()
	if err != nil {
		return &entryError{err}
	}
	defer rc.Close()
	// The zip reader itself refuses more bytes than the entry declares (and
	// a checksum mismatch); the declared sizes were bounded by planExtract.
	body, err := r.spool(ctx, rc, int64(f.UncompressedSize64), int64(f.UncompressedSize64))
	if err != nil {
		return &entryError{err}
	}
	defer body.Close()
	return r.put(ctx, bucket, key, body, body.size, contentType(key), cache)
}

type zipEntry struct {
	name string // cleaned, relative
	file *zip.File
}

// planExtract opens the artifact as a zip and checks every entry before
// anything is written: the number of files and their total size are
// bounded (zip bombs), and names must be relative paths that stay inside
// the destination (no "..", no absolute paths). Directories and symbolic
// links are skipped.
func (r *Runner) planExtract(body *spooled, size int64) ([]zipEntry, error) {
	zr, err := zip.NewReader(body, size)
	if err != nil {
		if errors.Is(err, zip.ErrFormat) {
			return nil, errors.New("it is not a valid zip file")
		}
		return nil, fmt.Errorf("it is not a valid zip file (%v)", err)
	}
	var out []zipEntry
	var total uint64
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/") || !f.Mode().IsRegular() {
			continue
		}
		name, err := cleanEntryName(f.Name)
		if err != nil {
			return nil, err
		}
		if len(out) == r.o.MaxExtractFiles {
			return nil, fmt.Errorf("it holds more than %d files", r.o.MaxExtractFiles)
		}
		total += f.UncompressedSize64
		if f.UncompressedSize64 > uint64(r.o.MaxExtractBytes) || total > uint64(r.o.MaxExtractBytes) {
			return nil, fmt.Errorf("its files hold more than %d bytes uncompressed", r.o.MaxExtractBytes)
		}
		out = append(out, zipEntry{name: name, file: f})
	}
	return out, nil
}

// cleanEntryName checks a zip entry's name and returns it as an S3 key suffix.
func cleanEntryName(name string) (string, error) {
	if !utf8.ValidString(name) || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("the entry name %q is not valid UTF-8", name)
	}
	slashed := strings.ReplaceAll(name, `\`, "/")
	if strings.HasPrefix(slashed, "/") || (len(slashed) >= 2 && slashed[1] == ':') {
		return "", fmt.Errorf("the entry %q has an absolute path", name)
	}
	for _, seg := range strings.Split(slashed, "/") {
		if seg == ".." {
			return "", fmt.Errorf("the entry %q has a path that leaves its directory (..)", name)
		}
	}
	clean := path.Clean(slashed)
	if clean == "." || clean == "" {
		return "", fmt.Errorf("the entry %q has an empty name", name)
	}
	return clean, nil
}

// contentTypes are the Content-Types of common web files, which do not
// depend on the host's MIME tables.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8",
	".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
	".json": "application/json", ".map": "application/json", ".webmanifest": "application/manifest+json",
	".txt": "text/plain; charset=utf-8", ".md": "text/markdown; charset=utf-8", ".csv": "text/csv; charset=utf-8",
	".xml": "application/xml", ".yaml": "application/yaml", ".yml": "application/yaml",
	".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
	".gif": "image/gif", ".webp": "image/webp", ".avif": "image/avif", ".ico": "image/vnd.microsoft.icon",
	".woff": "font/woff", ".woff2": "font/woff2", ".ttf": "font/ttf", ".otf": "font/otf",
	".pdf": "application/pdf", ".zip": "application/zip", ".gz": "application/gzip", ".tar": "application/x-tar",
	".wasm": "application/wasm", ".mp4": "video/mp4", ".webm": "video/webm", ".mp3": "audio/mpeg",
}

// contentType guesses a key's Content-Type from its extension.
func contentType(key string) string {
	ext := strings.ToLower(path.Ext(key))
	if ct, ok := contentTypes[ext]; ok {
		return ct
	}
	if ct := mime.TypeByExtension(ext); ext != "" && ct != "" {
		return ct
	}
	return "application/octet-stream"
}
