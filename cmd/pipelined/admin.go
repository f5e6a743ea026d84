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
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/pipelined/pipelined/internal/admin"
)

// adminCommand is one `pipelined admin` subcommand.
type adminCommand struct {
	name, args, help string
	// flags adds the command's own flags; request builds its request from
	// them (method, path below /admin/v1/, query, body).
	flags   func(fs *flag.FlagSet) func() (method, path string, query url.Values, body []byte, err error)
	success int // the HTTP status of success
}

var adminCommands = []adminCommand{
	{
		name: "register-third-party-action-type", args: "--cli-input-json file://type.json",
		help: "register an action type of owner ThirdParty: the JSON of create-custom-action-type (category, provider,\n" +
			"        version, settings, configurationProperties, inputArtifactDetails, outputArtifactDetails, tags), plus\n" +
			"        jobTimeoutInMinutes (1-720). Registering the identical definition again is harmless.",
		success: http.StatusOK,
		flags: func(fs *flag.FlagSet) func() (string, string, url.Values, []byte, error) {
			input := fs.String("cli-input-json", "", "the action type as JSON, or file://PATH to read it from a file")
			return func() (string, string, url.Values, []byte, error) {
				body, err := readInputJSON(*input)
				return http.MethodPost, "third-party-action-types", nil, body, err
			}
		},
	},
	{
		name: "deregister-third-party-action-type", args: "--category C --provider P --version V",
		help:    "deregister a third-party action type (registering the identical definition again restores it)",
		success: http.StatusOK,
		flags: func(fs *flag.FlagSet) func() (string, string, url.Values, []byte, error) {
			category := fs.String("category", "", "the action type's category (Source, Build, Deploy, Test, Invoke, Approval)")
			provider := fs.String("provider", "", "the action type's provider")
			version := fs.String("version", "", "the action type's version")
			return func() (string, string, url.Values, []byte, error) {
				if err := required(map[string]string{"--category": *category, "--provider": *provider, "--version": *version}); err != nil {
					return "", "", nil, nil, err
				}
				return http.MethodDelete, admin.ActionTypePath(*category, *provider, *version), nil, nil, nil
			}
		},
	},
	{
		name: "issue-client", args: "--pipeline P --stage S --action A",
		help: "issue a clientId/clientToken pair for a pipeline action of a ThirdParty action type, for the partner\n" +
			"        that runs it. Prints the pair as JSON; the token is shown this once (the server keeps only a hash).",
		success: http.StatusCreated,
		flags: func(fs *flag.FlagSet) func() (string, string, url.Values, []byte, error) {
			pipeline := fs.String("pipeline", "", "the pipeline's name")
			stage := fs.String("stage", "", "the stage's name")
			action := fs.String("action", "", "the action's name")
			return func() (string, string, url.Values, []byte, error) {
				if err := required(map[string]string{"--pipeline": *pipeline, "--stage": *stage, "--action": *action}); err != nil {
					return "", "", nil, nil, err
				}
				body, err := json.Marshal(admin.IssueClientInput{PipelineName: *pipeline, StageName: *stage, ActionName: *action})
				return http.MethodPost, "clients", nil, body, err
			}
		},
	},
	{
		name: "revoke-client", args: "--client-id ID",
		help:    "revoke a client: its token stops working at once",
		success: http.StatusOK,
		flags: func(fs *flag.FlagSet) func() (string, string, url.Values, []byte, error) {
			id := fs.String("client-id", "", "the clientId to revoke")
			return func() (string, string, url.Values, []byte, error) {
				if err := required(map[string]string{"--client-id": *id}); err != nil {
					return "", "", nil, nil, err
				}
				return http.MethodDelete, "clients/" + url.PathEscape(*id), nil, nil, nil
			}
		},
	},
	{
		name: "list-clients", args: "[--pipeline P]",
		help:    "list the clients of a pipeline (of every pipeline without --pipeline), revoked ones included; never tokens",
		success: http.StatusOK,
		flags: func(fs *flag.FlagSet) func() (string, string, url.Values, []byte, error) {
			pipeline := fs.String("pipeline", "", "the pipeline's name")
			return func() (string, string, url.Values, []byte, error) {
				var q url.Values
				if *pipeline != "" {
					q = url.Values{"pipelineName": {*pipeline}}
				}
				return http.MethodGet, "clients", q, nil, nil
			}
		},
	},
}

func adminUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: pipelined admin <command> [flags]

Operator commands, sent to a running server's admin API (/admin/v1/), signed
with SigV4 by the root credentials.

Commands:
`)
	for _, c := range adminCommands {
		fmt.Fprintf(w, "  %s %s\n        %s\n", c.name, c.args, c.help)
	}
	fmt.Fprint(w, `
Flags of every command:
  --endpoint-url URL   the server (default: AWS_ENDPOINT_URL, or endpoint_url of the shared config)
  --region REGION      the server's region (default: AWS_REGION, AWS_DEFAULT_REGION or the shared config)
  --profile NAME       the shared config/credentials profile (default: AWS_PROFILE, else "default")
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
	profile := fs.String("profile", "", "the shared config/credentials profile (default: AWS_PROFILE)")
	build := cmd.flags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pipelined admin %s %s\n        %s\n\nFlags:\n", cmd.name, cmd.args, cmd.help)
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
	method, path, query, body, err := build()
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
	status, resp, err := c.Do(ctx, method, path, query, body)
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
