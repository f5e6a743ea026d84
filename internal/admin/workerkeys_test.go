package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline/types"
	"github.com/aws/smithy-go"

	"github.com/pipelined/pipelined/internal/admin"
	"github.com/pipelined/pipelined/internal/server/servertest"
	"github.com/pipelined/pipelined/internal/sigv4"
	"github.com/pipelined/pipelined/internal/wire"
)

var (
	customBuild   = &wire.ActionTypeId{Category: "Build", Owner: "Custom", Provider: "Tool", Version: "1"}
	partnerSource = &wire.ActionTypeId{Category: "Source", Owner: "ThirdParty", Provider: "Partner", Version: "1"}
)

// wantAPIErrorMentions is wantAPIError, and the message names what.
func wantAPIErrorMentions(t *testing.T, what string, err error, status int, code, mention string) {
	t.Helper()
	wantAPIError(t, what, err, status, code)
	var ae *admin.APIError
	if errors.As(err, &ae) && !strings.Contains(ae.Message, mention) {
		t.Errorf("%s: message %q does not mention %q", what, ae.Message, mention)
	}
}

func asAPIError(err error, ae **admin.APIError) bool { return errors.As(err, ae) }

func smithyCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// rawCall sends a root-signed request and returns the status and body.
func rawCall(t *testing.T, adm *admin.Client, method, path string, body []byte) (int, string) {
	t.Helper()
	status, out, err := adm.Do(context.Background(), method, path, nil, body)
	if err != nil {
		t.Fatal(err)
	}
	return status, string(out)
}

// setUpActionTypes creates the custom type customBuild and registers the
// third-party type partnerSource.
func setUpActionTypes(t *testing.T, srv *servertest.Instance) {
	t.Helper()
	ctx := context.Background()
	if _, err := rootClient(srv).RegisterActionType(ctx, partnerType("Partner")); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client().CreateCustomActionType(ctx, &codepipeline.CreateCustomActionTypeInput{Category: types.ActionCategoryBuild, Provider: aws.String("Tool"), Version: aws.String("1"),
		InputArtifactDetails: &types.ArtifactDetails{MinimumCount: 0, MaximumCount: 5}, OutputArtifactDetails: &types.ArtifactDetails{MinimumCount: 0, MaximumCount: 5}}); err != nil {
		t.Fatal(err)
	}
}

func TestWorkerKeys(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		srv := servertest.Start(t, backend)
		adm := rootClient(srv)
		ctx := context.Background()
		setUpActionTypes(t, srv)

		// Issue for a Custom type, as the raw answer shows it.
		before := time.Now().Add(-time.Second)
		status, body := rawCall(t, adm, http.MethodPost, "worker-keys", []byte(`{"actionTypeId": {"category": "Build", "owner": "Custom", "provider": "Tool", "version": "1"}, "description": "build hosts"}`))
		if status != http.StatusCreated {
			t.Fatalf("create = %d %s", status, body)
		}
		var rawOut struct {
			WorkerKey       map[string]json.RawMessage `json:"workerKey"`
			SecretAccessKey string                     `json:"secretAccessKey"`
		}
		if err := json.Unmarshal([]byte(body), &rawOut); err != nil {
			t.Fatal(err)
		}
		for _, member := range []string{"accessKeyId", "actionTypeId", "description", "created", "status"} {
			if _, ok := rawOut.WorkerKey[member]; !ok {
				t.Errorf("the created workerKey has no %q: %s", member, body)
			}
		}
		if _, ok := rawOut.WorkerKey["revoked"]; ok {
			t.Errorf("an active key shows \"revoked\": %s", body)
		}
		var custom admin.CreateWorkerKeyOutput
		if err := json.Unmarshal([]byte(body), &custom); err != nil {
			t.Fatal(err)
		}
		k := custom.WorkerKey
		if k.AccessKeyID == "" || custom.SecretAccessKey == "" || k.Status != admin.StatusActive || k.Description != "build hosts" ||
			*k.ActionTypeID != *customBuild || k.Revoked != "" {
			t.Fatalf("created = %s", body)
		}
		created, err := time.Parse(time.RFC3339Nano, k.Created)
		if err != nil || created.Before(before) || created.After(time.Now().Add(time.Second)) || !strings.HasSuffix(k.Created, "Z") {
			t.Fatalf("created = %q (%v), want an RFC 3339 UTC time of now", k.Created, err)
		}

		// And for a ThirdParty type, without a description, with the client.
		partner, err := adm.CreateWorkerKey(ctx, &admin.CreateWorkerKeyInput{ActionTypeID: partnerSource})
		if err != nil {
			t.Fatal(err)
		}
		if partner.WorkerKey.AccessKeyID == k.AccessKeyID || partner.SecretAccessKey == custom.SecretAccessKey || partner.SecretAccessKey == "" ||
			*partner.WorkerKey.ActionTypeID != *partnerSource || partner.WorkerKey.Status != admin.StatusActive || partner.WorkerKey.Description != "" {
			t.Fatalf("created = %+v", partner)
		}

		// Types that cannot have worker keys, and requests that are not
		// the operation's.
		_, err = adm.CreateWorkerKey(ctx, &admin.CreateWorkerKeyInput{ActionTypeID: &wire.ActionTypeId{Category: "Source", Owner: "AWS", Provider: "S3", Version: "1"}})
		wantAPIErrorMentions(t, "an AWS-owned type", err, http.StatusBadRequest, wire.ErrValidation, "Custom or ThirdParty")
		_, err = adm.CreateWorkerKey(ctx, &admin.CreateWorkerKeyInput{ActionTypeID: &wire.ActionTypeId{Category: "Build", Owner: "Custom", Provider: "Nope", Version: "1"}})
		wantAPIError(t, "a custom type that does not exist", err, http.StatusNotFound, wire.ErrActionTypeNotFound)
		_, err = adm.CreateWorkerKey(ctx, &admin.CreateWorkerKeyInput{ActionTypeID: &wire.ActionTypeId{Category: "Source", Owner: "ThirdParty", Provider: "Partner", Version: "2"}})
		wantAPIError(t, "a third-party type that does not exist", err, http.StatusNotFound, wire.ErrActionTypeNotFound)
		if _, err := adm.RegisterActionType(ctx, partnerType("Gone")); err != nil {
			t.Fatal(err)
		}
		if err := adm.DeregisterActionType(ctx, "Source", "Gone", "1"); err != nil {
			t.Fatal(err)
		}
		_, err = adm.CreateWorkerKey(ctx, &admin.CreateWorkerKeyInput{ActionTypeID: &wire.ActionTypeId{Category: "Source", Owner: "ThirdParty", Provider: "Gone", Version: "1"}})
		wantAPIError(t, "a deregistered type", err, http.StatusNotFound, wire.ErrActionTypeNotFound)
		for _, tc := range []struct {
			name, body, code, mention string
		}{
			{"unknown member", `{"actionTypeId": {"category": "Build", "owner": "Custom", "provider": "Tool", "version": "1"}, "descripton": "x"}`, wire.ErrSerialization, `"descripton"`},
			{"unknown member of actionTypeId", `{"actionTypeId": {"category": "Build", "ownr": "Custom", "provider": "Tool", "version": "1"}}`, wire.ErrSerialization, `"ownr"`},
			{"not JSON", `{"actionTypeId":`, wire.ErrSerialization, "JSON"},
			{"no body", ``, wire.ErrSerialization, "JSON body"},
			{"no actionTypeId", `{"description": "x"}`, wire.ErrValidation, "'actionTypeId'"},
			{"no category", `{"actionTypeId": {"owner": "Custom", "provider": "Tool", "version": "1"}}`, wire.ErrValidation, "'actionTypeId.category'"},
			{"an owner that is none", `{"actionTypeId": {"category": "Build", "owner": "Me", "provider": "Tool", "version": "1"}}`, wire.ErrValidation, "'actionTypeId.owner'"},
			{"a bad provider", `{"actionTypeId": {"category": "Build", "owner": "Custom", "provider": "has space", "version": "1"}}`, wire.ErrValidation, "'actionTypeId.provider'"},
			{"a description too long", `{"actionTypeId": {"category": "Build", "owner": "Custom", "provider": "Tool", "version": "1"}, "description": "` + strings.Repeat("é", 257) + `"}`, wire.ErrValidation, "'description'"},
		} {
			err := adm.Call(ctx, http.MethodPost, "worker-keys", nil, []byte(tc.body), nil)
			wantAPIErrorMentions(t, tc.name, err, http.StatusBadRequest, tc.code, tc.mention)
		}
		if _, err := adm.CreateWorkerKey(ctx, &admin.CreateWorkerKeyInput{ActionTypeID: customBuild, Description: strings.Repeat("é", 256)}); err != nil {
			t.Fatalf("a description of 256 characters: %v", err)
		}
		wantAPIError(t, "PUT worker-keys", adm.Call(ctx, http.MethodPut, "worker-keys", nil, nil, nil), http.StatusMethodNotAllowed, admin.ErrMethodNotAllowed)
		wantAPIError(t, "POST worker-keys/ID", adm.Call(ctx, http.MethodPost, admin.WorkerKeyPath(k.AccessKeyID), nil, []byte(`{}`), nil), http.StatusMethodNotAllowed, admin.ErrMethodNotAllowed)
		wantAPIError(t, "worker-keys/ID/more", adm.Call(ctx, http.MethodGet, admin.WorkerKeyPath(k.AccessKeyID)+"/more", nil, nil, nil), http.StatusNotFound, admin.ErrNotFound)

		secrets := []string{custom.SecretAccessKey, partner.SecretAccessKey}
		noSecret := func(what, body string) {
			t.Helper()
			for _, s := range secrets {
				if strings.Contains(body, s) {
					t.Fatalf("%s shows a secret: %s", what, body)
				}
			}
			if strings.Contains(strings.ToLower(body), "secret") || strings.Contains(strings.ToLower(body), "sealed") {
				t.Fatalf("%s has a secret member: %s", what, body)
			}
		}

		// List and describe: never a secret.
		status, body = rawCall(t, adm, http.MethodGet, "worker-keys", nil)
		if status != http.StatusOK {
			t.Fatalf("list = %d %s", status, body)
		}
		noSecret("list", body)
		list, err := adm.ListWorkerKeys(ctx)
		if err != nil || len(list) != 3 || !reflect.DeepEqual(list[0], k) || !reflect.DeepEqual(list[1], partner.WorkerKey) {
			t.Fatalf("ListWorkerKeys = %+v, %v; want %+v and %+v first", list, err, k, partner.WorkerKey)
		}
		status, body = rawCall(t, adm, http.MethodGet, admin.WorkerKeyPath(k.AccessKeyID), nil)
		if status != http.StatusOK {
			t.Fatalf("describe = %d %s", status, body)
		}
		noSecret("describe", body)
		got, err := adm.DescribeWorkerKey(ctx, k.AccessKeyID)
		if err != nil || !reflect.DeepEqual(*got, k) {
			t.Fatalf("DescribeWorkerKey = %+v, %v; want %+v", got, err, k)
		}
		for _, id := range []string{"PLWKAAAAAAAAAAAAAAAA", "nope", servertest.AccessKeyID} {
			_, err = adm.DescribeWorkerKey(ctx, id)
			wantAPIError(t, "describe "+id, err, http.StatusNotFound, admin.ErrWorkerKeyNotFound)
			_, err = adm.RevokeWorkerKey(ctx, id)
			wantAPIError(t, "revoke "+id, err, http.StatusNotFound, admin.ErrWorkerKeyNotFound)
		}

		// The store keeps the secret sealed.
		stored, err := srv.Store().GetWorkerKey(ctx, k.AccessKeyID)
		if err != nil {
			t.Fatal(err)
		}
		if stored.SealedSecret == "" || strings.Contains(stored.SealedSecret, custom.SecretAccessKey) {
			t.Fatal("the store does not keep the secret sealed")
		}

		// The key signs its type's job protocol, not the admin API.
		worker := srv.ClientWith(k.AccessKeyID, custom.SecretAccessKey, servertest.Region)
		if _, err := worker.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: &types.ActionTypeId{Category: types.ActionCategoryBuild, Owner: types.ActionOwnerCustom, Provider: aws.String("Tool"), Version: aws.String("1")}, MaxBatchSize: aws.Int32(1)}); err != nil {
			t.Fatalf("PollForJobs with the worker key: %v", err)
		}
		_, err = client(srv, k.AccessKeyID, custom.SecretAccessKey, servertest.Region).ListWorkerKeys(ctx)
		var ae *admin.APIError
		if !asAPIError(err, &ae) || ae.Status != http.StatusForbidden {
			t.Fatalf("the admin API with a worker key: %v, want 403", err)
		}
		_, err = client(srv, k.AccessKeyID, custom.SecretAccessKey, servertest.Region).CreateWorkerKey(ctx, &admin.CreateWorkerKeyInput{ActionTypeID: customBuild})
		if !asAPIError(err, &ae) || ae.Status != http.StatusForbidden {
			t.Fatalf("a worker key issuing a worker key: %v, want 403", err)
		}

		// Revoke: at once, and again harmlessly.
		rev, err := adm.RevokeWorkerKey(ctx, k.AccessKeyID)
		if err != nil || rev.Status != admin.StatusRevoked || rev.Revoked == "" || rev.AccessKeyID != k.AccessKeyID || rev.Created != k.Created {
			t.Fatalf("revoke = %+v, %v", rev, err)
		}
		if r, err := time.Parse(time.RFC3339Nano, rev.Revoked); err != nil || r.Before(created) {
			t.Fatalf("revoked = %q (%v)", rev.Revoked, err)
		}
		status, body = rawCall(t, adm, http.MethodDelete, admin.WorkerKeyPath(k.AccessKeyID), nil)
		var again admin.WorkerKeyOutput
		if status != http.StatusOK || json.Unmarshal([]byte(body), &again) != nil || !reflect.DeepEqual(again.WorkerKey, *rev) {
			t.Fatalf("revoking twice = %d %s, want 200 and %+v", status, body, rev)
		}
		noSecret("revoke", body)
		if got, err := adm.DescribeWorkerKey(ctx, k.AccessKeyID); err != nil || !reflect.DeepEqual(*got, *rev) {
			t.Fatalf("describe a revoked key = %+v, %v", got, err)
		}
		list, err = adm.ListWorkerKeys(ctx)
		if err != nil || len(list) != 3 || !reflect.DeepEqual(list[0], *rev) || !reflect.DeepEqual(list[1], partner.WorkerKey) {
			t.Fatalf("ListWorkerKeys after revoking = %+v, %v", list, err)
		}
		_, err = worker.PollForJobs(ctx, &codepipeline.PollForJobsInput{ActionTypeId: &types.ActionTypeId{Category: types.ActionCategoryBuild, Owner: types.ActionOwnerCustom, Provider: aws.String("Tool"), Version: aws.String("1")}})
		if code := smithyCode(err); code != wire.ErrUnrecognizedClient {
			t.Fatalf("PollForJobs with a revoked key: %v, want %s", err, wire.ErrUnrecognizedClient)
		}

		logs := srv.Logs()
		for _, s := range secrets {
			if strings.Contains(logs, s) {
				t.Fatal("the server logged a worker key's secret")
			}
		}
		if !strings.Contains(logs, k.AccessKeyID) {
			t.Error("the server did not log the issue or revocation of a worker key")
		}
	})
}

// TestAdminRefusesNonRootCallers: should the admin API be given a lookup
// that knows worker keys (the CodePipeline API's), it still takes root
// only.
func TestAdminRefusesNonRootCallers(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	setUpActionTypes(t, srv)
	issued, err := rootClient(srv).CreateWorkerKey(ctx, &admin.CreateWorkerKeyInput{ActionTypeID: customBuild})
	if err != nil {
		t.Fatal(err)
	}
	wk := srv.WorkerKeys()
	lookup := func(ctx context.Context, id string) (sigv4.Credential, error) {
		if id == servertest.AccessKeyID {
			return sigv4.Credential{AccessKeyID: id, SecretAccessKey: servertest.SecretAccessKey, Principal: "arn:aws:iam::" + servertest.AccountID + ":root"}, nil
		}
		return wk.Lookup(ctx, id)
	}
	h := admin.New(admin.Config{Store: srv.Store(), WorkerKeys: wk,
		Verifier: &sigv4.Verifier{Region: servertest.Region, Service: admin.SigningService, Lookup: lookup}})
	hs := httptest.NewServer(h)
	defer hs.Close()
	at := func(akid, secret string) *admin.Client {
		return &admin.Client{Endpoint: hs.URL, Region: servertest.Region, Credentials: credentials.NewStaticCredentialsProvider(akid, secret, "")}
	}
	if list, err := at(servertest.AccessKeyID, servertest.SecretAccessKey).ListWorkerKeys(ctx); err != nil || len(list) != 1 {
		t.Fatalf("root: %+v, %v", list, err)
	}
	_, err = at(issued.WorkerKey.AccessKeyID, issued.SecretAccessKey).ListWorkerKeys(ctx)
	wantAPIError(t, "a worker key", err, http.StatusForbidden, wire.ErrAccessDenied)
	err = at(issued.WorkerKey.AccessKeyID, issued.SecretAccessKey).Call(ctx, http.MethodGet, "no-such-route", nil, nil, nil)
	wantAPIError(t, "a worker key on a route that does not exist", err, http.StatusForbidden, wire.ErrAccessDenied)
	_, err = at(issued.WorkerKey.AccessKeyID, issued.SecretAccessKey).RevokeWorkerKey(ctx, issued.WorkerKey.AccessKeyID)
	wantAPIError(t, "a worker key revoking itself", err, http.StatusForbidden, wire.ErrAccessDenied)
	if got, err := at(servertest.AccessKeyID, servertest.SecretAccessKey).DescribeWorkerKey(ctx, issued.WorkerKey.AccessKeyID); err != nil || got.Status != admin.StatusActive {
		t.Fatalf("after the refusals: %+v, %v", got, err)
	}
}
