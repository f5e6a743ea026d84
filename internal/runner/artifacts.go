package runner

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pipelined/pipelined/internal/commandspec"
	"github.com/pipelined/pipelined/internal/wire"
)

// s3Client signs with the job's artifact credentials: the runner reaches
// the artifact store with nothing else.
func (j *job) s3Client(creds *wire.AWSSessionCredentials) *s3.Client {
	o := s3.Options{
		Region:                     j.r.o.Region,
		HTTPClient:                 j.r.o.HTTPClient,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if creds != nil {
		o.Credentials = credentials.NewStaticCredentialsProvider(creds.AccessKeyId, creds.SecretAccessKey, creds.SessionToken)
	}
	if j.r.o.S3Endpoint != "" {
		o.BaseEndpoint = aws.String(strings.TrimRight(j.r.o.S3Endpoint, "/"))
		o.UsePathStyle = true
	}
	return s3.New(o)
}

// fetchInputs downloads and unpacks the input artifacts, each into
// src/<name>; the first is the primary one, where the commands start.
func (j *job) fetchInputs(ctx context.Context) ([]srcDir, error) {
	if len(j.data.InputArtifacts) == 0 {
		return nil, errors.New("the job has no input artifact (a Commands action takes 1 to 10)")
	}
	client := j.s3Client(j.data.ArtifactCredentials)
	budget := &unpackBudget{bytes: j.r.o.MaxInputBytes, files: j.r.o.MaxInputFiles}
	var dirs []srcDir
	for i, a := range j.data.InputArtifacts {
		if a.Location == nil || a.Location.S3Location == nil {
			return nil, fmt.Errorf("input artifact %s has no S3 location", a.Name)
		}
		loc := a.Location.S3Location
		dir := filepath.Join(j.dir, "src", fmt.Sprintf("%02d-%s", i, envSafe(a.Name)))
		if err := os.Mkdir(dir, 0o700); err != nil {
			return nil, err
		}
		zipPath := filepath.Join(j.dir, "ctl", fmt.Sprintf("input-%d.zip", i))
		if err := download(ctx, client, loc.BucketName, loc.ObjectKey, zipPath, j.r.o.MaxInputBytes); err != nil {
			return nil, fmt.Errorf("could not download input artifact %s (s3://%s/%s): %w", a.Name, loc.BucketName, loc.ObjectKey, err)
		}
		if err := unpack(zipPath, dir, budget); err != nil {
			return nil, fmt.Errorf("could not unpack input artifact %s: %w", a.Name, err)
		}
		_ = os.Remove(zipPath)
		dirs = append(dirs, srcDir{name: a.Name, path: dir})
	}
	return dirs, nil
}

func download(ctx context.Context, c *s3.Client, bucket, key, dest string, limit int64) error {
	obj, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return err
	}
	defer obj.Body.Close()
	f, err := os.OpenFile(dest, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(obj.Body, limit+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > limit {
		err = fmt.Errorf("it is larger than %d bytes", limit)
	}
	return err
}

// unpackBudget bounds what the inputs of one job unpack to (zip bombs).
type unpackBudget struct {
	bytes int64
	files int
}

// unpack extracts a zip into dir through an os.Root, so that no entry can
// reach outside it: entries with absolute names or '..', symlinks, and
// anything past the budget are refused.
func unpack(zipPath, dir string, b *unpackBudget) error {
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		return fmt.Errorf("it is not a valid zip file: %w", err)
	}
	defer zr.Close()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	for _, f := range zr.File {
		name, err := entryName(f.Name)
		if err != nil {
			return err
		}
		if name == "" {
			continue
		}
		mode := f.Mode()
		switch {
		case mode&fs.ModeSymlink != 0:
			return fmt.Errorf("entry %q is a symbolic link, which the runner does not unpack", f.Name)
		case mode.IsDir():
			if err := root.MkdirAll(name, 0o755); err != nil {
				return fmt.Errorf("entry %q: %w", f.Name, err)
			}
			continue
		case !mode.IsRegular():
			return fmt.Errorf("entry %q is not a regular file", f.Name)
		}
		b.files--
		if b.files < 0 {
			return errors.New("it holds more files than a job may unpack")
		}
		if d := path.Dir(name); d != "." {
			if err := root.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("entry %q: %w", f.Name, err)
			}
		}
		if err := unpackFile(root, name, f, b); err != nil {
			return fmt.Errorf("entry %q: %w", f.Name, err)
		}
	}
	return nil
}

func unpackFile(root *os.Root, name string, f *zip.File, b *unpackBudget) error {
	perm := os.FileMode(0o644)
	if f.Mode()&0o111 != 0 {
		perm = 0o755
	}
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	w, err := root.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	n, err := io.Copy(w, io.LimitReader(rc, b.bytes+1))
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	b.bytes -= n
	if b.bytes < 0 {
		return errors.New("the inputs unpack to more bytes than a job may unpack")
	}
	return nil
}

// entryName checks a zip entry's name: relative, no '..', no backslashes
// or NULs; "" for the root directory entry.
func entryName(n string) (string, error) {
	if strings.ContainsAny(n, "\\\x00") || strings.HasPrefix(n, "/") {
		return "", fmt.Errorf("entry %q has an unsafe name", n)
	}
	for _, seg := range strings.Split(strings.TrimSuffix(n, "/"), "/") {
		if seg == ".." {
			return "", fmt.Errorf("entry %q reaches outside the artifact", n)
		}
	}
	c := path.Clean(n)
	if c == "." {
		return "", nil
	}
	return c, nil
}

// uploadOutput zips the files of the primary directory that the output
// artifact's globs select, and uploads the zip to the artifact's location
// with fresh credentials (a job may run long past the poll's).
func (j *job) uploadOutput(ctx context.Context, base string) error {
	a := j.data.OutputArtifacts[0]
	if a.Location == nil || a.Location.S3Location == nil {
		return fmt.Errorf("output artifact %s has no S3 location", a.Name)
	}
	var globs []*commandspec.Glob
	for _, f := range j.spec.Files {
		g, err := commandspec.CompileGlob(f)
		if err != nil {
			return fmt.Errorf("output artifact %s: files glob %q: %w", a.Name, f, err)
		}
		globs = append(globs, g)
	}
	zipPath := filepath.Join(j.dir, "ctl", "output.zip")
	n, err := zipFiles(base, globs, zipPath, j.r.o.MaxArtifactBytes)
	if err != nil {
		return fmt.Errorf("could not build output artifact %s: %w", a.Name, err)
	}
	if n == 0 {
		return fmt.Errorf("output artifact %s: no file matches its files globs %q", a.Name, j.spec.Files)
	}
	creds := j.data.ArtifactCredentials
	if d, err := j.r.srv.GetJobDetails(ctx, &wire.GetJobDetailsInput{JobId: j.id}); err == nil && d.JobDetails != nil && d.JobDetails.Data != nil && d.JobDetails.Data.ArtifactCredentials != nil {
		creds = d.JobDetails.Data.ArtifactCredentials
	}
	f, err := os.Open(zipPath)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	loc := a.Location.S3Location
	_, err = j.s3Client(creds).PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(loc.BucketName), Key: aws.String(loc.ObjectKey), Body: f,
		ContentLength: aws.Int64(st.Size()), ContentType: aws.String("application/zip"),
	})
	if err != nil {
		return fmt.Errorf("could not upload output artifact %s to s3://%s/%s: %w", a.Name, loc.BucketName, loc.ObjectKey, err)
	}
	return nil
}

// zipFiles writes the regular files under base matching any glob into a
// zip at dest (symbolic links are not followed or stored) and returns how
// many it holds.
func zipFiles(base string, globs []*commandspec.Glob, dest string, limit int64) (int, error) {
	out, err := os.OpenFile(dest, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	zw := zip.NewWriter(out)
	count, total := 0, int64(0)
	err = filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(base, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		matched := false
		for _, g := range globs {
			if g.Match(rel) {
				matched = true
				break
			}
		}
		if !matched {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += info.Size()
		if total > limit {
			return fmt.Errorf("the selected files are larger than %d bytes", limit)
		}
		h, err := zip.FileInfoHeader(info)
		if err != nil {
			return err
		}
		h.Name, h.Method = rel, zip.Deflate
		w, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		_, err = io.Copy(w, f)
		f.Close()
		count++
		return err
	})
	if err != nil {
		return 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	return count, out.Sync()
}
