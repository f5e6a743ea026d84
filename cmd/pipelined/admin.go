package main

// `pipelined admin`: the client of the admin API (internal/admin). It finds
// the server and credentials the way the aws CLI does: --endpoint-url or
// AWS_ENDPOINT_URL (or endpoint_url in the shared config), --region or the
// standard chain's region, and credentials from the SDK's default chain
// (environment, shared credentials and config files, --profile or
// AWS_PROFILE, ...). Requests are signed with SigV4 for the service
// "pipelined".

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/pipelined/pipelined/internal/admin"
	"github.com/pipelined/pipelined/internal/wire"
)

// adminCommand is one `pipelined admin` subcommand.
type adminCommand struct {
	name, args, help string
	// flags adds the command's own flags and returns what builds the
	// command's request from them.
	flags   func(fs *flag.FlagSet) func() (adminRequest, error)
	success int // the HTTP status of success
}

// adminRequest is what a command sends, and what it does around it.
type adminRequest struct {
	method, path string // path below /admin/v1/
	query        url.Values
	body         []byte
	// prepare, when set, runs once the client is made, before the request
	// is sent: the last chance to refuse without changing anything.
	prepare func(ctx context.Context, signer aws.Credentials) error
	// done, when set, runs after a successful answer has been printed.
	// An error is a failure (exit 1) of a request that did take effect.
	done func(resp []byte, stderr io.Writer) error
}

var adminCommands = []adminCommand{
	{
		name: "register-third-party-action-type", args: "--cli-input-json file://type.json",
		help: "register an action type of owner ThirdParty: the JSON of create-custom-action-type (category, provider,\n" +
			"        version, settings, configurationProperties, inputArtifactDetails, outputArtifactDetails, tags), plus\n" +
			"        jobTimeoutInMinutes (1-720). Registering the identical definition again is harmless.",
		success: http.StatusOK,
		flags: func(fs *flag.FlagSet) func() (adminRequest, error) {
			input := fs.String("cli-input-json", "", "the action type as JSON, or file://PATH to read it from a file")
			return func() (adminRequest, error) {
				body, err := readInputJSON(*input)
				return adminRequest{method: http.MethodPost, path: "third-party-action-types", body: body}, err
			}
		},
	},
	{
		name: "deregister-third-party-action-type", args: "--category C --provider P --version V",
		help:    "deregister a third-party action type (registering the identical definition again restores it)",
		success: http.StatusOK,
		flags: func(fs *flag.FlagSet) func() (adminRequest, error) {
			category := fs.String("category", "", "the action type's category (Source, Build, Deploy, Test, Invoke, Approval)")
			provider := fs.String("provider", "", "the action type's provider")
			version := fs.String("version", "", "the action type's version")
			return func() (adminRequest, error) {
				if err := required(map[string]string{"--category": *category, "--provider": *provider, "--version": *version}); err != nil {
					return adminRequest{}, err
				}
				return adminRequest{method: http.MethodDelete, path: admin.ActionTypePath(*category, *provider, *version)}, nil
			}
		},
	},
	{
		name: "issue-client", args: "--pipeline P --stage S --action A",
		help: "issue a clientId/clientToken pair for a pipeline action of a ThirdParty action type, for the partner\n" +
			"        that runs it. Prints the pair as JSON; the token is shown this once (the server keeps only a hash).",
		success: http.StatusCreated,
		flags: func(fs *flag.FlagSet) func() (adminRequest, error) {
			pipeline := fs.String("pipeline", "", "the pipeline's name")
			stage := fs.String("stage", "", "the stage's name")
			action := fs.String("action", "", "the action's name")
			return func() (adminRequest, error) {
				if err := required(map[string]string{"--pipeline": *pipeline, "--stage": *stage, "--action": *action}); err != nil {
					return adminRequest{}, err
				}
				body, err := json.Marshal(admin.IssueClientInput{PipelineName: *pipeline, StageName: *stage, ActionName: *action})
				return adminRequest{method: http.MethodPost, path: "clients", body: body}, err
			}
		},
	},
	{
		name: "revoke-client", args: "--client-id ID",
		help:    "revoke a client: its token stops working at once",
		success: http.StatusOK,
		flags: func(fs *flag.FlagSet) func() (adminRequest, error) {
			id := fs.String("client-id", "", "the clientId to revoke")
			return func() (adminRequest, error) {
				if err := required(map[string]string{"--client-id": *id}); err != nil {
					return adminRequest{}, err
				}
				return adminRequest{method: http.MethodDelete, path: "clients/" + url.PathEscape(*id)}, nil
			}
		},
	},
	{
		name: "list-clients", args: "[--pipeline P]",
		help:    "list the clients of a pipeline (of every pipeline without --pipeline), revoked ones included; never tokens",
		success: http.StatusOK,
		flags: func(fs *flag.FlagSet) func() (adminRequest, error) {
			pipeline := fs.String("pipeline", "", "the pipeline's name")
			return func() (adminRequest, error) {
				var q url.Values
				if *pipeline != "" {
					q = url.Values{"pipelineName": {*pipeline}}
				}
				return adminRequest{method: http.MethodGet, path: "clients", query: q}, nil
			}
		},
	},
	{
		name: "create-worker-key",
		args: "--category C --owner Custom|ThirdParty|AWS --provider P --version V [--description D]\n" +
			"        [--credentials-file PATH [--credentials-profile NAME]]",
		help: "issue a worker key: an access key pair that signs the job-protocol calls of one action type of owner\n" +
			"        Custom or ThirdParty (poll, acknowledge, details, results) and nothing else, for the hosts that run\n" +
			"        its jobs; or of Compute/AWS/Commands/1, for the hosts of pipelined runners. Prints it as JSON; the secret is shown this once. With --credentials-file, also writes\n" +
			"        the pair to PATH, a new file (an existing one is refused before anything is issued), in the\n" +
			"        shared-credentials format under [NAME] (default \"default\"), mode 0600, for a worker's\n" +
			"        AWS_SHARED_CREDENTIALS_FILE.",
		success: http.StatusCreated,
		flags: func(fs *flag.FlagSet) func() (adminRequest, error) {
			category := fs.String("category", "", "the action type's category (Source, Build, Deploy, Test, Invoke, Approval)")
			owner := fs.String("owner", "", "the action type's owner: Custom or ThirdParty (AWS for Compute/AWS/Commands/1, runners)")
			provider := fs.String("provider", "", "the action type's provider")
			version := fs.String("version", "", "the action type's version")
			description := fs.String("description", "", "what the key is for (up to 256 characters)")
			file := fs.String("credentials-file", "", "also write the pair to this shared-credentials file")
			profile := fs.String("credentials-profile", "", `the profile of --credentials-file to write (default "default")`)
			return func() (adminRequest, error) {
				if err := required(map[string]string{"--category": *category, "--owner": *owner, "--provider": *provider, "--version": *version}); err != nil {
					return adminRequest{}, err
				}
				body, err := json.Marshal(admin.CreateWorkerKeyInput{
					ActionTypeID: &wire.ActionTypeId{Category: wire.ActionCategory(*category), Owner: wire.ActionOwner(*owner), Provider: *provider, Version: *version},
					Description:  *description,
				})
				if err != nil {
					return adminRequest{}, err
				}
				req := adminRequest{method: http.MethodPost, path: "worker-keys", body: body}
				if *file == "" {
					if *profile != "" {
						return adminRequest{}, errors.New("--credentials-profile goes with --credentials-file")
					}
					return req, nil
				}
				w := credentialsWriter{path: *file, profile: *profile}
				if w.profile == "" {
					w.profile = "default"
				}
				if !profileName.MatchString(w.profile) {
					return adminRequest{}, fmt.Errorf("--credentials-profile %q: a profile name is letters, digits and _.@+=,:-", w.profile)
				}
				req.prepare = w.check
				req.done = w.write
				return req, nil
			}
		},
	},
	{
		name: "list-worker-keys", args: "",
		help:    "list the worker keys, revoked ones included; never secrets",
		success: http.StatusOK,
		flags: func(fs *flag.FlagSet) func() (adminRequest, error) {
			return func() (adminRequest, error) {
				return adminRequest{method: http.MethodGet, path: "worker-keys"}, nil
			}
		},
	},
	{
		name: "describe-worker-key", args: "--access-key-id ID",
		help:    "show one worker key (never its secret)",
		success: http.StatusOK,
		flags:   workerKeyRequest(http.MethodGet),
	},
	{
		name: "revoke-worker-key", args: "--access-key-id ID",
		help:    "revoke a worker key: it stops signing anything at once (revoking twice is harmless)",
		success: http.StatusOK,
		flags:   workerKeyRequest(http.MethodDelete),
	},
	connectionCredentialsCommand, // admin_connections.go
}

// workerKeyRequest is the flags and request of a command on one worker key
// (--access-key-id).
func workerKeyRequest(method string) func(fs *flag.FlagSet) func() (adminRequest, error) {
	return func(fs *flag.FlagSet) func() (adminRequest, error) {
		id := fs.String("access-key-id", "", "the worker key's access key id")
		return func() (adminRequest, error) {
			if err := required(map[string]string{"--access-key-id": *id}); err != nil {
				return adminRequest{}, err
			}
			return adminRequest{method: method, path: admin.WorkerKeyPath(*id)}, nil
		}
	}
}

func adminUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: pipelined admin <command> [flags]

Operator commands, sent to a running server's admin API (/admin/v1/), signed
with SigV4 by the root credentials.

Commands:
`)
	for _, c := range adminCommands {
		fmt.Fprintf(w, "  %s\n        %s\n", strings.TrimSpace(c.name+" "+c.args), c.help)
	}
	fmt.Fprint(w, `
Flags of every command:
  --endpoint-url URL   the server (default: AWS_ENDPOINT_URL, or endpoint_url of the shared config)
  --region REGION      the server's region (default: AWS_REGION, AWS_DEFAULT_REGION or the shared config)
  --profile NAME       the shared config/credentials profile to sign with (default: AWS_PROFILE, else "default");
                       not the profile create-worker-key writes (that is --credentials-profile)
Credentials come from the AWS SDK's default chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or the
shared credentials file (AWS_SHARED_CREDENTIALS_FILE, e.g. <data-dir>/credentials), ...
`)
}

func adminMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		adminUsage(stderr)
		return 2
	}
	switch args[0] {
	case "help", "--help", "-help", "-h":
		adminUsage(stdout)
		return 0
	}
	var cmd *adminCommand
	for i := range adminCommands {
		if adminCommands[i].name == args[0] {
			cmd = &adminCommands[i]
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "pipelined admin: unknown command %q\n\n", args[0])
		adminUsage(stderr)
		return 2
	}
	fs := flag.NewFlagSet("admin "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint-url", "", "the server's URL (default: AWS_ENDPOINT_URL)")
	region := fs.String("region", "", "the server's region (default: the AWS SDK's region chain)")
	profile := fs.String("profile", "", "the shared config/credentials profile to sign with (default: AWS_PROFILE)")
	build := cmd.flags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pipelined admin %s\n        %s\n\nFlags:\n", strings.TrimSpace(cmd.name+" "+cmd.args), cmd.help)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pipelined admin %s: unexpected argument %q\n", cmd.name, fs.Arg(0))
		return 2
	}
	req, err := build()
	if err != nil {
		fmt.Fprintf(stderr, "pipelined admin %s: %v\n", cmd.name, err)
		return 2
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := newAdminClient(ctx, *endpoint, *region, *profile)
	if err != nil {
		fmt.Fprintf(stderr, "pipelined admin %s: %v\n", cmd.name, err)
		return 2
	}
	if req.prepare != nil {
		creds, err := c.Credentials.Retrieve(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "pipelined admin %s: credentials: %v\n", cmd.name, err)
			return 2
		}
		if err := req.prepare(ctx, creds); err != nil {
			fmt.Fprintf(stderr, "pipelined admin %s: %v\n", cmd.name, err)
			return 2
		}
	}
	status, resp, err := c.Do(ctx, req.method, req.path, req.query, req.body)
	if err != nil {
		fmt.Fprintf(stderr, "pipelined admin %s: %v\n", cmd.name, err)
		return 1
	}
	if status != cmd.success {
		var e admin.ErrorBody
		if json.Unmarshal(resp, &e) == nil && e.Code != "" {
			fmt.Fprintf(stderr, "pipelined admin %s: %s (HTTP %d): %s\n", cmd.name, e.Code, status, e.Message)
		} else {
			fmt.Fprintf(stderr, "pipelined admin %s: HTTP %d: %s\n", cmd.name, status, strings.TrimSpace(string(resp)))
		}
		return 1
	}
	_, _ = stdout.Write(resp)
	if req.done != nil {
		if err := req.done(resp, stderr); err != nil {
			fmt.Fprintf(stderr, "pipelined admin %s: %v\n", cmd.name, err)
			return 1
		}
	}
	return 0
}

func required(flags map[string]string) error {
	var missing []string
	for name, v := range flags {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing) // a stable message
		return fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	return nil
}

// readInputJSON reads --cli-input-json: file://PATH (or fileb://PATH), or
// the JSON itself, as the aws CLI takes it.
func readInputJSON(v string) ([]byte, error) {
	if v == "" {
		return nil, errors.New("missing --cli-input-json (the JSON, or file://PATH)")
	}
	var data []byte
	if path, ok := strings.CutPrefix(v, "file://"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("--cli-input-json: %w", err)
		}
		data = b
	} else if path, ok := strings.CutPrefix(v, "fileb://"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("--cli-input-json: %w", err)
		}
		data = b
	} else {
		data = []byte(v)
	}
	if !json.Valid(data) {
		return nil, errors.New("--cli-input-json: not valid JSON")
	}
	return data, nil
}

// newAdminClient finds the endpoint, region and credentials as the aws CLI
// does.
func newAdminClient(ctx context.Context, endpoint, region, profile string) (*admin.Client, error) {
	var opts []func(*config.LoadOptions) error
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	if profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if endpoint == "" && cfg.BaseEndpoint != nil {
		endpoint = *cfg.BaseEndpoint
	}
	if endpoint == "" {
		return nil, errors.New("no endpoint: pass --endpoint-url or set AWS_ENDPOINT_URL to the server's URL")
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("endpoint %q is not an http(s) URL", endpoint)
	}
	if cfg.Region == "" {
		return nil, errors.New("no region: pass --region or set AWS_REGION (the server's --region, us-east-1 unless changed)")
	}
	if cfg.Credentials == nil {
		return nil, errors.New("no credentials: set AWS_SHARED_CREDENTIALS_FILE to the server's credentials file, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	}
	return &admin.Client{Endpoint: endpoint, Region: cfg.Region, Credentials: cfg.Credentials}, nil
}

// profileName is what --credentials-profile takes: a section name of a
// shared-credentials file that needs no quoting.
var profileName = regexp.MustCompile(`^[A-Za-z0-9_.@+=,:-]+$`)

// credentialsWriter writes an issued worker key to a new shared-credentials
// file (create-worker-key --credentials-file). Only a new file: adding to
// an existing one would mean editing an INI file that may hold other
// credentials (the server's own, say), which the operator can do by hand
// from the printed answer.
type credentialsWriter struct {
	path, profile string
}

// check refuses, before anything is issued, what write would refuse: an
// existing file, or a directory that does not exist.
func (w credentialsWriter) check(context.Context, aws.Credentials) error {
	if _, err := os.Lstat(w.path); err == nil {
		return fmt.Errorf("--credentials-file %s exists: give a new file (the worker key is written to a new file only)", w.path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("--credentials-file: %w", err)
	}
	if fi, err := os.Stat(filepath.Dir(w.path)); err != nil || !fi.IsDir() {
		return fmt.Errorf("--credentials-file %s: its directory does not exist", w.path)
	}
	return nil
}

// write writes the key of create-worker-key's answer, which has been
// printed, and says where on stderr (without the secret).
func (w credentialsWriter) write(resp []byte, stderr io.Writer) error {
	var out admin.CreateWorkerKeyOutput
	if err := json.Unmarshal(resp, &out); err != nil || out.WorkerKey.AccessKeyID == "" || out.SecretAccessKey == "" {
		return fmt.Errorf("the answer holds no worker key to write to %s", w.path)
	}
	id := out.WorkerKey.AccessKeyID
	if err := writeProfile(w.path, w.profile, id, out.SecretAccessKey); err != nil {
		return fmt.Errorf("worker key %s was issued (printed above) but not written to %s: %v; revoke it (pipelined admin revoke-worker-key --access-key-id %s) unless you keep it otherwise",
			id, w.path, err, id)
	}
	shown := w.path
	if abs, err := filepath.Abs(w.path); err == nil {
		shown = abs
	}
	fmt.Fprintf(stderr, "pipelined admin create-worker-key: wrote worker key %s to %s, profile [%s] (mode 0600); a worker uses it with AWS_SHARED_CREDENTIALS_FILE=%s AWS_PROFILE=%s\n",
		id, shown, w.profile, shown, w.profile)
	return nil
}

// writeProfile writes a new shared-credentials file, mode 0600, holding
// one profile with the key pair; it fails if the file exists.
func writeProfile(path, profile, accessKeyID, secret string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\n", profile, accessKeyID, secret)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path) // ours (O_EXCL), and half written
	}
	return err
}
