package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/codeconnections"
	cctypes "github.com/aws/aws-sdk-go-v2/service/codeconnections/types"
	"github.com/aws/aws-sdk-go-v2/service/codestarconnections"
	cstypes "github.com/aws/aws-sdk-go-v2/service/codestarconnections/types"
	"github.com/aws/smithy-go"

	"github.com/pipelined/pipelined/internal/admin"
	"github.com/pipelined/pipelined/internal/connections"
	"github.com/pipelined/pipelined/internal/server/servertest"
)

func ccClient(in *servertest.Instance, akid, secret string) *codeconnections.Client {
	return codeconnections.New(codeconnections.Options{
		Region: servertest.Region, BaseEndpoint: aws.String(in.URL), RetryMaxAttempts: 1, HTTPClient: in.HTTP,
		Credentials: credentials.NewStaticCredentialsProvider(akid, secret, ""),
	})
}

func csClient(in *servertest.Instance) *codestarconnections.Client {
	return codestarconnections.New(codestarconnections.Options{
		Region: servertest.Region, BaseEndpoint: aws.String(in.URL), RetryMaxAttempts: 1, HTTPClient: in.HTTP,
		Credentials: credentials.NewStaticCredentialsProvider(servertest.AccessKeyID, servertest.SecretAccessKey, ""),
	})
}

func connCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// setConnectionCredentials calls the admin API the way `pipelined admin
// set-connection-credentials` does, signed by root.
func setConnectionCredentials(t *testing.T, in *servertest.Instance, arn string, c connections.Credentials) (int, []byte) {
	t.Helper()
	body, _ := json.Marshal(admin.SetConnectionCredentialsInput{ConnectionArn: arn, Credentials: c})
	req, _ := http.NewRequest(http.MethodPost, in.URL+admin.PathPrefix+"connection-credentials", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	sum := sha256Hex(body)
	err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: servertest.AccessKeyID, SecretAccessKey: servertest.SecretAccessKey},
		req, sum, admin.SigningService, servertest.Region, timeNow())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := in.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.Bytes()
}

func TestConnectionsAPI(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		srv := servertest.Start(t, backend)
		ctx := t.Context()
		cc := ccClient(srv, servertest.AccessKeyID, servertest.SecretAccessKey)
		cs := csClient(srv)

		// A cloud connection: PENDING until it has credentials.
		created, err := cc.CreateConnection(ctx, &codeconnections.CreateConnectionInput{
			ConnectionName: aws.String("gh"), ProviderType: cctypes.ProviderTypeGithub,
			Tags: []cctypes.Tag{{Key: aws.String("team"), Value: aws.String("a")}},
		})
		if err != nil {
			t.Fatal(err)
		}
		arn := aws.ToString(created.ConnectionArn)
		if !strings.HasPrefix(arn, "arn:aws:codeconnections:us-east-1:123456789012:connection/") {
			t.Fatalf("ConnectionArn = %s", arn)
		}
		got, err := cc.GetConnection(ctx, &codeconnections.GetConnectionInput{ConnectionArn: &arn})
		if err != nil {
			t.Fatal(err)
		}
		c := got.Connection
		if aws.ToString(c.ConnectionName) != "gh" || c.ConnectionStatus != cctypes.ConnectionStatusPending ||
			c.ProviderType != cctypes.ProviderTypeGithub || aws.ToString(c.OwnerAccountId) != servertest.AccountID {
			t.Fatalf("GetConnection = %+v", *c)
		}
		// The CodeStar API sees the same connection under its own ARN, and
		// takes either ARN.
		csARN := strings.Replace(arn, ":codeconnections:", ":codestar-connections:", 1)
		gotCS, err := cs.GetConnection(ctx, &codestarconnections.GetConnectionInput{ConnectionArn: &arn})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(gotCS.Connection.ConnectionArn) != csARN || gotCS.Connection.ConnectionStatus != cstypes.ConnectionStatusPending {
			t.Fatalf("codestar GetConnection = %+v", *gotCS.Connection)
		}

		// Credentials make it AVAILABLE; the answer never shows them.
		status, body := setConnectionCredentials(t, srv, csARN, connections.Credentials{Kind: "token", Token: "ghp_secret-token-value"})
		if status != http.StatusOK || bytes.Contains(body, []byte("ghp_secret")) {
			t.Fatalf("set credentials: %d %s", status, body)
		}
		got, _ = cc.GetConnection(ctx, &codeconnections.GetConnectionInput{ConnectionArn: &arn})
		if got.Connection.ConnectionStatus != cctypes.ConnectionStatusAvailable {
			t.Fatalf("status after credentials = %s", got.Connection.ConnectionStatus)
		}
		if strings.Contains(srv.Logs(), "ghp_secret") {
			t.Fatal("the token appears in the server's log")
		}
		status, body = setConnectionCredentials(t, srv, arn, connections.Credentials{Kind: "ssh", SSHPrivateKey: "nope"})
		if status != http.StatusBadRequest || !bytes.Contains(body, []byte("sshPrivateKey")) {
			t.Fatalf("bad ssh key: %d %s", status, body)
		}
		status, _ = setConnectionCredentials(t, srv, strings.Replace(arn, "connection/", "connection/0", 1), connections.Credentials{Kind: "none"})
		if status != http.StatusNotFound {
			t.Fatalf("credentials of a missing connection: %d", status)
		}

		// Hosts: self-managed servers; their connections take the host's provider.
		host, err := cs.CreateHost(ctx, &codestarconnections.CreateHostInput{
			Name: aws.String("Forge One"), ProviderType: cstypes.ProviderTypeGitlabSelfManaged, ProviderEndpoint: aws.String("https://git.example.com/"),
		})
		if err != nil {
			t.Fatal(err)
		}
		hostARN := aws.ToString(host.HostArn)
		if !strings.HasPrefix(hostARN, "arn:aws:codestar-connections:us-east-1:123456789012:host/Forge-One-") {
			t.Fatalf("HostArn = %s", hostARN)
		}
		gh, err := cc.GetHost(ctx, &codeconnections.GetHostInput{HostArn: &hostARN})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(gh.Name) != "Forge One" || aws.ToString(gh.ProviderEndpoint) != "https://git.example.com" || aws.ToString(gh.Status) != "AVAILABLE" {
			t.Fatalf("GetHost = %+v", gh)
		}
		_, err = cc.CreateHost(ctx, &codeconnections.CreateHostInput{
			Name: aws.String("bad"), ProviderType: cctypes.ProviderTypeGitlabSelfManaged, ProviderEndpoint: aws.String("https://user:pw@git.example.com"),
		})
		if connCode(err) != "ValidationException" || !strings.Contains(err.Error(), "credentials") {
			t.Fatalf("endpoint with credentials: %v", err)
		}
		_, err = cc.CreateConnection(ctx, &codeconnections.CreateConnectionInput{ConnectionName: aws.String("x"), ProviderType: cctypes.ProviderTypeGitlabSelfManaged})
		if connCode(err) != "ValidationException" || !strings.Contains(err.Error(), "HostArn") {
			t.Fatalf("self-managed without a host: %v", err)
		}
		onHost, err := cc.CreateConnection(ctx, &codeconnections.CreateConnectionInput{ConnectionName: aws.String("on-host"), HostArn: &hostARN})
		if err != nil {
			t.Fatal(err)
		}
		_, err = cc.DeleteHost(ctx, &codeconnections.DeleteHostInput{HostArn: &hostARN})
		if connCode(err) != "ResourceUnavailableException" {
			t.Fatalf("DeleteHost in use: %v", err)
		}

		// Lists page and filter.
		for i := 0; i < 3; i++ {
			if _, err := cc.CreateConnection(ctx, &codeconnections.CreateConnectionInput{ConnectionName: aws.String("bb"), ProviderType: cctypes.ProviderTypeBitbucket}); err != nil {
				t.Fatal(err)
			}
		}
		var all []string
		p := codeconnections.NewListConnectionsPaginator(cc, &codeconnections.ListConnectionsInput{MaxResults: 2})
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Connections) > 2 {
				t.Fatalf("page of %d", len(out.Connections))
			}
			for _, c := range out.Connections {
				all = append(all, aws.ToString(c.ConnectionArn))
			}
		}
		if len(all) != 5 {
			t.Fatalf("listed %d connections, want 5: %v", len(all), all)
		}
		byHost, err := cc.ListConnections(ctx, &codeconnections.ListConnectionsInput{HostArnFilter: &hostARN})
		if err != nil || len(byHost.Connections) != 1 || aws.ToString(byHost.Connections[0].ConnectionArn) != aws.ToString(onHost.ConnectionArn) {
			t.Fatalf("ListConnections by host: %+v %v", byHost, err)
		}
		byType, err := cs.ListConnections(ctx, &codestarconnections.ListConnectionsInput{ProviderTypeFilter: cstypes.ProviderTypeBitbucket})
		if err != nil || len(byType.Connections) != 3 {
			t.Fatalf("ListConnections by provider: %+v %v", byType, err)
		}
		hosts, err := cs.ListHosts(ctx, &codestarconnections.ListHostsInput{})
		if err != nil || len(hosts.Hosts) != 1 || aws.ToString(hosts.Hosts[0].HostArn) != hostARN {
			t.Fatalf("ListHosts: %+v %v", hosts, err)
		}

		// Tags.
		if _, err := cc.TagResource(ctx, &codeconnections.TagResourceInput{ResourceArn: &arn, Tags: []cctypes.Tag{{Key: aws.String("env"), Value: aws.String("prod")}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.UntagResource(ctx, &codestarconnections.UntagResourceInput{ResourceArn: &csARN, TagKeys: []string{"team"}}); err != nil {
			t.Fatal(err)
		}
		tags, err := cc.ListTagsForResource(ctx, &codeconnections.ListTagsForResourceInput{ResourceArn: &arn})
		if err != nil || len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].Key) != "env" || aws.ToString(tags.Tags[0].Value) != "prod" {
			t.Fatalf("tags: %+v %v", tags, err)
		}

		// Errors as AWS names them.
		missing := strings.Replace(arn, "connection/", "connection/x", 1)
		if _, err := cc.GetConnection(ctx, &codeconnections.GetConnectionInput{ConnectionArn: &missing}); connCode(err) != "ResourceNotFoundException" {
			t.Fatalf("GetConnection missing: %v", err)
		}
		var rnf *cctypes.ResourceNotFoundException
		if _, err := cc.DeleteConnection(ctx, &codeconnections.DeleteConnectionInput{ConnectionArn: &missing}); !errors.As(err, &rnf) {
			t.Fatalf("DeleteConnection missing: %v", err)
		}
		if _, err := cc.GetConnection(ctx, &codeconnections.GetConnectionInput{ConnectionArn: aws.String("arn:aws:s3:::bucket")}); connCode(err) != "ValidationException" {
			t.Fatalf("GetConnection of a bad ARN: %v", err)
		}
		if _, err := cc.CreateConnection(ctx, &codeconnections.CreateConnectionInput{ConnectionName: aws.String(strings.Repeat("n", 33)), ProviderType: cctypes.ProviderTypeGithub}); connCode(err) != "ValidationException" {
			t.Fatalf("long name: %v", err)
		}
		if _, err := cc.ListRepositoryLinks(ctx, &codeconnections.ListRepositoryLinksInput{}); connCode(err) != "UnsupportedOperationException" {
			t.Fatalf("an operation not served: %v", err)
		}
		if _, err := ccClient(srv, servertest.AccessKeyID, "wrong-secret").ListHosts(ctx, &codeconnections.ListHostsInput{}); connCode(err) != "InvalidSignatureException" {
			t.Fatalf("bad signature: %v", err)
		}

		// Delete.
		if _, err := cs.DeleteConnection(ctx, &codestarconnections.DeleteConnectionInput{ConnectionArn: onHost.ConnectionArn}); err != nil {
			t.Fatal(err)
		}
		if _, err := cc.DeleteHost(ctx, &codeconnections.DeleteHostInput{HostArn: &hostARN}); err != nil {
			t.Fatal(err)
		}
		if _, err := cc.GetHost(ctx, &codeconnections.GetHostInput{HostArn: &hostARN}); connCode(err) != "ResourceNotFoundException" {
			t.Fatalf("GetHost after delete: %v", err)
		}
	})
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func timeNow() time.Time { return time.Now() }
