// Package credentials provides the server's root credentials: the access key
// pair that signs administrative API requests. They come from the
// environment, or are generated on first start and written, readable only by
// the owner, to a file in the AWS shared-credentials format, so that the aws
// CLI, boto3 and the SDKs can use them with AWS_SHARED_CREDENTIALS_FILE.
package credentials

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Root is the root access key pair.
type Root struct {
	AccessKeyID     string
	SecretAccessKey string
}

// Source says where Load found the credentials.
type Source int

const (
	FromEnvironment Source = iota
	FromFile
	Generated
)

// Load returns the root credentials: from accessKeyID/secret when both are
// set (the PIPELINED_ROOT_* variables), else from the file at path, else
// newly generated and written to path with mode 0600.
func Load(accessKeyID, secret, path string) (Root, Source, error) {
	if accessKeyID != "" || secret != "" {
		if accessKeyID == "" || secret == "" {
			return Root{}, 0, errors.New("credentials: set both PIPELINED_ROOT_ACCESS_KEY_ID and PIPELINED_ROOT_SECRET_ACCESS_KEY, or neither")
		}
		return Root{AccessKeyID: accessKeyID, SecretAccessKey: secret}, FromEnvironment, nil
	}
	if b, err := os.ReadFile(path); err == nil {
		r, err := parse(string(b))
		if err != nil {
			return Root{}, 0, fmt.Errorf("credentials: %s: %w", path, err)
		}
		return r, FromFile, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return Root{}, 0, err
	}
	r := Root{AccessKeyID: "PLAK" + randomString(16, upperAlnum), SecretAccessKey: randomString(40, secretAlphabet)}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return Root{}, 0, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return Load("", "", path) // another process wrote it first
	}
	if err != nil {
		return Root{}, 0, err
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "# Root credentials of this pipelined server. Keep this file secret.\n[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", r.AccessKeyID, r.SecretAccessKey); err != nil {
		return Root{}, 0, err
	}
	return r, Generated, f.Sync()
}

// parse reads the [default] profile of a shared-credentials file.
func parse(s string) (Root, error) {
	var r Root
	section := ""
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section = strings.TrimSpace(line[1 : len(line)-1])
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section != "default" {
			continue
		}
		switch strings.TrimSpace(k) {
		case "aws_access_key_id":
			r.AccessKeyID = strings.TrimSpace(v)
		case "aws_secret_access_key":
			r.SecretAccessKey = strings.TrimSpace(v)
		}
	}
	if r.AccessKeyID == "" || r.SecretAccessKey == "" {
		return Root{}, errors.New("no [default] profile with aws_access_key_id and aws_secret_access_key")
	}
	return r, nil
}

const (
	upperAlnum     = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	secretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)

// randomString draws n characters uniformly from an alphabet whose size is a
// power of two (so masking a random byte has no bias).
func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("credentials: crypto/rand failed: " + err.Error())
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
