package admin_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"
	"github.com/aws/smithy-go"

	"github.com/pipelined/pipelined/internal/admin"
	"github.com/pipelined/pipelined/internal/executions"
	"github.com/pipelined/pipelined/internal/server/servertest"
	"github.com/pipelined/pipelined/internal/wire"
)

func client(srv *servertest.Instance, akid, secret, region string) *admin.Client {
	return &admin.Client{Endpoint: srv.URL, Region: region, HTTP: srv.HTTP,
		Credentials: credentials.NewStaticCredentialsProvider(akid, secret, "")}
}

func rootClient(srv *servertest.Instance) *admin.Client {
	return client(srv, servertest.AccessKeyID, servertest.SecretAccessKey, servertest.Region)
}

// wantAPIError checks an admin API error's status and code.
func wantAPIError(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	var ae *admin.APIError
	if !errors.As(err, &ae) || ae.Status != status || ae.Code != code {
		t.Fatalf("%s: err = %v, want %s (HTTP %d)", what, err, code, status)
	}
	if ae.Message == "" {
		t.Errorf("%s: no message", what)
	}
}

// raw sends a request as given and decodes the JSON error body.
func raw(t *testing.T, srv *servertest.Instance, req *http.Request) (int, admin.ErrorBody) {
	t.Helper()
	resp, err := srv.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var e admin.ErrorBody
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", body, err)
	}
	return resp.StatusCode, e
}

// signed builds a request signed with the root credentials for service
// and region.
func signed(t *testing.T, method, url string, body []byte, service, region string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	creds := aws.Credentials{AccessKeyID: servertest.AccessKeyID, SecretAccessKey: servertest.SecretAccessKey}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hash, service, region, time.Now()); err != nil {
		t.Fatal(err)
	}
	return req
}

func TestAdminRefusesUnsignedAndWronglySigned(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()

	// Unsigned: refused before routing, for real and made-up routes alike.
	for _, path := range []string{"clients", "third-party-action-types", "worker-keys", "no-such-thing"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+admin.PathPrefix+path, nil)
		status, e := raw(t, srv, req)
		if status != http.StatusUnauthorized || e.Code != wire.ErrMissingAuthenticationToken || e.Message == "" {
			t.Errorf("unsigned GET %s = %d %+v, want 401 %s", path, status, e, wire.ErrMissingAuthenticationToken)
		}
	}

	_, err := client(srv, servertest.AccessKeyID, "not-the-secret", servertest.Region).ListClients(ctx, "")
	wantAPIError(t, "wrong secret", err, http.StatusForbidden, wire.ErrInvalidSignature)
	_, err = client(srv, "PLAKNOSUCHKEY0000000", servertest.SecretAccessKey, servertest.Region).ListClients(ctx, "")
	wantAPIError(t, "unknown access key", err, http.StatusForbidden, wire.ErrUnrecognizedClient)
	_, err = client(srv, servertest.AccessKeyID, servertest.SecretAccessKey, "eu-west-1").ListClients(ctx, "")
	wantAPIError(t, "wrong region", err, http.StatusForbidden, wire.ErrInvalidSignature)

	// Signed for CodePipeline instead of the admin API's service.
	status, e := raw(t, srv, signed(t, http.MethodGet, srv.URL+admin.PathPrefix+"clients", nil, "codepipeline", servertest.Region))
	if status != http.StatusForbidden || e.Code != wire.ErrInvalidSignature {
		t.Errorf("signed for codepipeline = %d %+v, want 403 %s", status, e, wire.ErrInvalidSignature)
	}
	// A body changed after signing.
	req := signed(t, http.MethodPost, srv.URL+admin.PathPrefix+"clients", []byte(`{"pipelineName":"a","stageName":"b","actionName":"c"}`), admin.SigningService, servertest.Region)
	req.Body = io.NopCloser(strings.NewReader(`{"pipelineName":"x","stageName":"b","actionName":"c"}`))
	status, e = raw(t, srv, req)
	if status != http.StatusForbidden || e.Code != wire.ErrInvalidSignature {
		t.Errorf("tampered body = %d %+v, want 403 %s", status, e, wire.ErrInvalidSignature)
	}
	// The payload must be signed.
	req = signed(t, http.MethodGet, srv.URL+admin.PathPrefix+"clients", nil, admin.SigningService, servertest.Region)
	req2, _ := http.NewRequest(http.MethodGet, req.URL.String(), nil)
	req2.Header = req.Header.Clone()
	req2.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	if status, e := raw(t, srv, req2); status != http.StatusForbidden {
		t.Errorf("unsigned payload = %d %+v, want 403", status, e)
	}

	// And the other way round: an admin signature does not open the
	// CodePipeline API.
	cp := signed(t, http.MethodPost, srv.URL+"/", []byte(`{}`), admin.SigningService, servertest.Region)
	cp.Header.Set("X-Amz-Target", "CodePipeline_20150709.ListPipelines")
	cp.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp, err := srv.HTTP.Do(cp)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("CodePipeline call signed for the admin service = %d, want 403", resp.StatusCode)
	}

	// Correctly signed: routing and decoding errors are JSON too.
	adm := rootClient(srv)
	wantAPIError(t, "unknown route", adm.Call(ctx, http.MethodGet, "nothing-here", nil, nil, nil), http.StatusNotFound, admin.ErrNotFound)
	wantAPIError(t, "wrong method", adm.Call(ctx, http.MethodPut, "clients", nil, nil, nil), http.StatusMethodNotAllowed, admin.ErrMethodNotAllowed)
	wantAPIError(t, "bad JSON", adm.Call(ctx, http.MethodPost, "clients", nil, []byte(`{"pipelineName":`), nil), http.StatusBadRequest, wire.ErrSerialization)
	wantAPIError(t, "unknown member", adm.Call(ctx, http.MethodPost, "clients", nil, []byte(`{"pipeline":"p"}`), nil), http.StatusBadRequest, wire.ErrSerialization)
	wantAPIError(t, "missing members", adm.Call(ctx, http.MethodPost, "clients", nil, []byte(`{}`), nil), http.StatusBadRequest, wire.ErrValidation)
	if cs, err := adm.ListClients(ctx, ""); err != nil || len(cs) != 0 {
		t.Fatalf("ListClients = %v, %v", cs, err)
	}
}

func partnerType(provider string) *admin.RegisterActionTypeInput {
	return &admin.RegisterActionTypeInput{CreateCustomActionTypeInput: wire.CreateCustomActionTypeInput{
		Category: "Source", Provider: provider, Version: "1",
		ConfigurationProperties: []wire.ActionConfigurationProperty{{Name: "Repo", Required: wire.Ptr(true), Key: wire.Ptr(true), Secret: wire.Ptr(false), Queryable: wire.Ptr(true)}},
		InputArtifactDetails:    &wire.ArtifactDetails{MinimumCount: wire.Ptr(0), MaximumCount: wire.Ptr(0)},
		OutputArtifactDetails:   &wire.ArtifactDetails{MinimumCount: wire.Ptr(1), MaximumCount: wire.Ptr(1)},
		Settings:                &wire.ActionTypeSettings{EntityUrlTemplate: "https://partner.example.com/{Config:Repo}"},
		Tags:                    []wire.Tag{{Key: "team", Value: "partners"}},
	}, JobTimeoutInMinutes: wire.Ptr(30)}
}

func TestRegisterThirdPartyActionType(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		srv := servertest.Start(t, backend)
		adm, c := rootClient(srv), srv.Client()
		ctx := context.Background()

		out, err := adm.RegisterActionType(ctx, partnerType("Partner"))
		if err != nil {
			t.Fatal(err)
		}
		if out.ActionType.Id.Owner != "ThirdParty" || out.JobTimeoutInMinutes != 30 || len(out.Tags) != 1 {
			t.Fatalf("registered = %+v", out)
		}
		// Identical again: accepted. Changed: refused.
		if _, err := adm.RegisterActionType(ctx, partnerType("Partner")); err != nil {
			t.Fatalf("registering the identical type again: %v", err)
		}
		changed := partnerType("Partner")
		changed.JobTimeoutInMinutes = wire.Ptr(31)
		_, err = adm.RegisterActionType(ctx, changed)
		wantAPIError(t, "a changed definition", err, http.StatusBadRequest, wire.ErrValidation)

		// CodePipeline's own API shows it.
		got, err := c.GetActionType(ctx, &codepipeline.GetActionTypeInput{Category: types.ActionCategorySource, Owner: aws.String("ThirdParty"), Provider: aws.String("Partner"), Version: aws.String("1")})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToInt32(got.ActionType.Executor.JobTimeout) != 30*60 {
			t.Errorf("jobTimeout = %d, want 1800", aws.ToInt32(got.ActionType.Executor.JobTimeout))
		}
		list, err := c.ListActionTypes(ctx, &codepipeline.ListActionTypesInput{ActionOwnerFilter: types.ActionOwnerThirdParty})
		if err != nil || len(list.ActionTypes) != 1 || aws.ToString(list.ActionTypes[0].Id.Provider) != "Partner" {
			t.Fatalf("ListActionTypes(ThirdParty) = %+v, %v", list, err)
		}

		// CreateCustomActionType's rules, and the model's constraints.
		for name, mutate := range map[string]func(in *admin.RegisterActionTypeInput){
			"queryable not required": func(in *admin.RegisterActionTypeInput) { in.ConfigurationProperties[0].Required = wire.Ptr(false) },
			"template names no property": func(in *admin.RegisterActionTypeInput) {
				in.Settings.EntityUrlTemplate = "https://partner.example.com/{Config:Nope}"
			},
			"template not http":    func(in *admin.RegisterActionTypeInput) { in.Settings.EntityUrlTemplate = "ftp://x/{Config:Repo}" },
			"min above max":        func(in *admin.RegisterActionTypeInput) { in.OutputArtifactDetails.MinimumCount = wire.Ptr(2) },
			"job timeout too long": func(in *admin.RegisterActionTypeInput) { in.JobTimeoutInMinutes = wire.Ptr(721) },
			"job timeout zero":     func(in *admin.RegisterActionTypeInput) { in.JobTimeoutInMinutes = wire.Ptr(0) },
			"bad provider":         func(in *admin.RegisterActionTypeInput) { in.Provider = "has space" },
			"no category":          func(in *admin.RegisterActionTypeInput) { in.Category = "" },
		} {
			in := partnerType("Other")
			mutate(in)
			_, err := adm.RegisterActionType(ctx, in)
			wantAPIError(t, name, err, http.StatusBadRequest, wire.ErrValidation)
		}
		reserved := partnerType("Other")
		reserved.Tags = []wire.Tag{{Key: "aws:x", Value: "y"}}
		_, err = adm.RegisterActionType(ctx, reserved)
		wantAPIError(t, "reserved tag", err, http.StatusBadRequest, wire.ErrInvalidTags)

		// Deregister, then register identical to restore.
		wantAPIError(t, "deregister unknown", adm.DeregisterActionType(ctx, "Source", "Nobody", "1"), http.StatusNotFound, wire.ErrActionTypeNotFound)
		if err := adm.DeregisterActionType(ctx, "Source", "Partner", "1"); err != nil {
			t.Fatal(err)
		}
		if err := adm.DeregisterActionType(ctx, "Source", "Partner", "1"); err != nil {
			t.Fatalf("deregistering twice: %v", err)
		}
		_, err = c.GetActionType(ctx, &codepipeline.GetActionTypeInput{Category: types.ActionCategorySource, Owner: aws.String("ThirdParty"), Provider: aws.String("Partner"), Version: aws.String("1")})
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != wire.ErrActionTypeNotFound {
			t.Fatalf("GetActionType of a deregistered type: %v", err)
		}
		_, err = adm.RegisterActionType(ctx, changed)
		wantAPIError(t, "a changed definition of a deregistered type", err, http.StatusBadRequest, wire.ErrValidation)
		if _, err := adm.RegisterActionType(ctx, partnerType("Partner")); err != nil {
			t.Fatalf("restoring: %v", err)
		}
	})
}

// mixedPipeline: a third-party source and a custom build.
func mixedPipeline(name string) *types.PipelineDeclaration {
	return &types.PipelineDeclaration{
		Name: aws.String(name), RoleArn: aws.String("arn:aws:iam::123456789012:role/r"),
		ArtifactStore: &types.ArtifactStore{Type: types.ArtifactStoreTypeS3, Location: aws.String("artifacts")},
		Stages: []types.StageDeclaration{
			{Name: aws.String("Source"), Actions: []types.ActionDeclaration{{Name: aws.String("Fetch"),
				ActionTypeId:  &types.ActionTypeId{Category: types.ActionCategorySource, Owner: types.ActionOwnerThirdParty, Provider: aws.String("Partner"), Version: aws.String("1")},
				Configuration: map[string]string{"Repo": "app"}, OutputArtifacts: []types.OutputArtifact{{Name: aws.String("Code")}}}}},
			{Name: aws.String("Build"), Actions: []types.ActionDeclaration{{Name: aws.String("Compile"),
				ActionTypeId:   &types.ActionTypeId{Category: types.ActionCategoryBuild, Owner: types.ActionOwnerCustom, Provider: aws.String("Tool"), Version: aws.String("1")},
				InputArtifacts: []types.InputArtifact{{Name: aws.String("Code")}}}}},
		},
	}
}

func TestClients(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		srv := servertest.Start(t, backend)
		adm, c := rootClient(srv), srv.Client()
		ctx := context.Background()
		if _, err := adm.RegisterActionType(ctx, partnerType("Partner")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreateCustomActionType(ctx, &codepipeline.CreateCustomActionTypeInput{Category: types.ActionCategoryBuild, Provider: aws.String("Tool"), Version: aws.String("1"),
			InputArtifactDetails: &types.ArtifactDetails{MinimumCount: 0, MaximumCount: 5}, OutputArtifactDetails: &types.ArtifactDetails{MinimumCount: 0, MaximumCount: 5}}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: mixedPipeline("mixed")}); err != nil {
			t.Fatal(err)
		}

		_, err := adm.IssueClient(ctx, "nope", "Source", "Fetch")
		wantAPIError(t, "unknown pipeline", err, http.StatusNotFound, wire.ErrPipelineNotFound)
		_, err = adm.IssueClient(ctx, "mixed", "Nope", "Fetch")
		wantAPIError(t, "unknown stage", err, http.StatusNotFound, wire.ErrStageNotFound)
		_, err = adm.IssueClient(ctx, "mixed", "Source", "Nope")
		wantAPIError(t, "unknown action", err, http.StatusNotFound, wire.ErrActionNotFound)
		_, err = adm.IssueClient(ctx, "mixed", "Build", "Compile")
		wantAPIError(t, "a custom action", err, http.StatusBadRequest, wire.ErrValidation)

		issued, err := adm.IssueClient(ctx, "mixed", "Source", "Fetch")
		if err != nil {
			t.Fatal(err)
		}
		if issued.Status != admin.StatusActive || issued.ClientToken == "" || issued.ActionTypeID.Provider != "Partner" {
			t.Fatalf("issued = %+v", issued)
		}
		_, err = adm.IssueClient(ctx, "mixed", "Source", "Fetch")
		wantAPIError(t, "a second client", err, http.StatusConflict, admin.ErrClientAlreadyExists)

		// The store keeps the token's hash only.
		stored, err := srv.Store().GetClient(ctx, issued.ClientID)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(stored.TokenHash, executions.HashClientToken(issued.ClientToken)) || bytes.Contains(stored.TokenHash, []byte(issued.ClientToken)) {
			t.Fatal("the store does not keep exactly the token's hash")
		}

		list, err := adm.ListClients(ctx, "mixed")
		if err != nil || len(list) != 1 || list[0].ClientID != issued.ClientID || list[0].ClientToken != "" || list[0].Status != admin.StatusActive {
			t.Fatalf("ListClients = %+v, %v", list, err)
		}
		if other, err := adm.ListClients(ctx, "other"); err != nil || len(other) != 0 {
			t.Fatalf("ListClients(other) = %+v, %v", other, err)
		}

		// Revoke; unknown ids are 404; revoking twice is harmless.
		_, err = adm.RevokeClient(ctx, "no-such-client")
		wantAPIError(t, "revoke unknown", err, http.StatusNotFound, admin.ErrClientNotFound)
		rev, err := adm.RevokeClient(ctx, issued.ClientID)
		if err != nil || rev.Status != admin.StatusRevoked || rev.Revoked == "" {
			t.Fatalf("revoke = %+v, %v", rev, err)
		}
		if _, err := adm.RevokeClient(ctx, issued.ClientID); err != nil {
			t.Fatalf("revoking twice: %v", err)
		}
		second, err := adm.IssueClient(ctx, "mixed", "Source", "Fetch")
		if err != nil {
			t.Fatalf("issue after revoke: %v", err)
		}

		// A pipeline deleted and created again under its name is another
		// pipeline: the client is stale, and issuing replaces it.
		if _, err := c.DeletePipeline(ctx, &codepipeline.DeletePipelineInput{Name: aws.String("mixed")}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // another creation time
		if _, err := c.CreatePipeline(ctx, &codepipeline.CreatePipelineInput{Pipeline: mixedPipeline("mixed")}); err != nil {
			t.Fatal(err)
		}
		list, err = adm.ListClients(ctx, "")
		if err != nil || len(list) != 2 {
			t.Fatalf("ListClients = %+v, %v", list, err)
		}
		statuses := map[string]string{}
		for _, cl := range list {
			statuses[cl.ClientID] = cl.Status
		}
		if statuses[issued.ClientID] != admin.StatusRevoked || statuses[second.ClientID] != admin.StatusStale {
			t.Fatalf("statuses = %v", statuses)
		}
		third, err := adm.IssueClient(ctx, "mixed", "Source", "Fetch")
		if err != nil {
			t.Fatalf("issue over a stale client: %v", err)
		}
		list, _ = adm.ListClients(ctx, "mixed")
		for _, cl := range list {
			want := admin.StatusRevoked
			if cl.ClientID == third.ClientID {
				want = admin.StatusActive
			}
			if cl.Status != want {
				t.Errorf("client %s is %s, want %s", cl.ClientID, cl.Status, want)
			}
		}

		logs := srv.Logs()
		for _, tok := range []string{issued.ClientToken, second.ClientToken, third.ClientToken} {
			if strings.Contains(logs, tok) {
				t.Fatal("the server logged a client token")
			}
		}
	})
}
