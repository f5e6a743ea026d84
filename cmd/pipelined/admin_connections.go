package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/pipelined/pipelined/internal/admin"
	"github.com/pipelined/pipelined/internal/connections"
)

// maxSecretFile bounds a secret read from a file or stdin.
const maxSecretFile = 64 << 10

// connectionCredentialsCommand sets a connection's credentials. Secrets
// come from files (or stdin, "-"), never from flags, which other users of
// the machine see in the process list.
var connectionCredentialsCommand = adminCommand{
	name: "set-connection-credentials",
	args: "--connection-arn ARN --kind token|basic|ssh|none [--token-file F] [--username U] [--password-file F]\n" +
		"        [--ssh-key-file F --known-hosts-file F]",
	help: "set the credentials a connection reaches its Git server with, and make it AVAILABLE: an access token\n" +
		"        (sent as the HTTP basic-auth password, user --username or x-access-token), a user name and\n" +
		"        password, an SSH private key with the server's known_hosts line (pinned), or none (public\n" +
		"        repositories). Secrets are read from files (- for stdin), sealed under the master key, and never\n" +
		"        shown again.",
	success: http.StatusOK,
	flags: func(fs *flag.FlagSet) func() (adminRequest, error) {
		arn := fs.String("connection-arn", "", "the connection's ARN (arn:aws:codeconnections:... or arn:aws:codestar-connections:...)")
		kind := fs.String("kind", "", "token, basic, ssh or none")
		tokenFile := fs.String("token-file", "", "file holding the access token (- for stdin)")
		username := fs.String("username", "", "the user name (basic; optional for token and ssh)")
		passwordFile := fs.String("password-file", "", "file holding the password (- for stdin)")
		keyFile := fs.String("ssh-key-file", "", "file holding the unencrypted SSH private key")
		knownHostsFile := fs.String("known-hosts-file", "", "file holding the server's known_hosts line(s) (ssh-keyscan HOST)")
		return func() (adminRequest, error) {
			if err := required(map[string]string{"--connection-arn": *arn, "--kind": *kind}); err != nil {
				return adminRequest{}, err
			}
			c := connections.Credentials{Kind: *kind, Username: *username}
			var err error
			read := func(flagName, path string, dst *string) {
				if err != nil || path == "" {
					return
				}
				*dst, err = readSecretFile(flagName, path)
			}
			read("--token-file", *tokenFile, &c.Token)
			read("--password-file", *passwordFile, &c.Password)
			read("--ssh-key-file", *keyFile, &c.SSHPrivateKey)
			read("--known-hosts-file", *knownHostsFile, &c.KnownHosts)
			if err != nil {
				return adminRequest{}, err
			}
			body, err := json.Marshal(admin.SetConnectionCredentialsInput{ConnectionArn: *arn, Credentials: c})
			return adminRequest{method: http.MethodPost, path: "connection-credentials", body: body}, err
		}
	},
}

// readSecretFile reads a secret from a file, or stdin for "-", dropping
// one trailing newline (tokens are usually saved with one; an SSH key
// keeps its own).
func readSecretFile(flagName, path string) (string, error) {
	var r io.Reader
	if path == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("%s: %w", flagName, err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("%s: %w", flagName, err)
	}
	if len(b) > maxSecretFile {
		return "", fmt.Errorf("%s: larger than %d bytes", flagName, maxSecretFile)
	}
	s := string(b)
	if !strings.Contains(strings.TrimRight(s, "\r\n"), "\n") {
		s = strings.TrimRight(s, "\r\n")
	}
	if s == "" {
		return "", errors.New(flagName + ": the file is empty")
	}
	return s, nil
}
