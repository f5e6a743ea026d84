package executions_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/codepipeline"

	"github.com/pipelined/pipelined/internal/identity"
	"github.com/pipelined/pipelined/internal/server"
)

// TestThirdPartyJobGetsAnIDToken: a partner's worker proves its job with
// the nonce GetThirdPartyJobDetails gave it (only the client token's holder
// reads it), and gets a token whose claims name the partner's action; once
// it reported, the job gets no more tokens.
func TestThirdPartyJobGetsAnIDToken(t *testing.T) {
	srv, c, adm := setup(t, func(*server.Config) {}, "partner-id")
	src := issue(t, adm, "partner-id", "Source", "Fetch")
	job := pollOne(t, c, tpSource)
	id := aws.ToString(job.JobId)
	d := details(t, c, id, src.ClientToken)
	nonce := aws.ToString(d.Nonce)

	token := func() (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/ng/api/oidc/id-token/aws", strings.NewReader(`{}`))
		req.Header.Set("X-Api-Key", identity.RequestToken(id, nonce)) // Harness's header
		resp, err := srv.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var env struct {
			Data string `json:"data"`
		}
		_ = json.Unmarshal(b, &env)
		if env.Data == "" {
			return resp.StatusCode, nil
		}
		payload, err := base64.RawURLEncoding.DecodeString(strings.Split(env.Data, ".")[1])
		if err != nil {
			t.Fatal(err)
		}
		var claims map[string]any
		_ = json.Unmarshal(payload, &claims)
		return resp.StatusCode, claims
	}

	if s, _ := token(); s != http.StatusForbidden {
		t.Fatalf("before the acknowledgement: %d, want 403", s)
	}
	ack(t, c, id, nonce, src.ClientToken)
	s, claims := token()
	if s != http.StatusOK || claims["pipeline_name"] != "partner-id" || claims["action"] != "Fetch" ||
		claims["action_owner"] != "ThirdParty" || claims["step_type"] != "PartnerSource" || claims["job_id"] != id {
		t.Fatalf("in progress: %d %v", s, claims)
	}
	succeed(t, c, &codepipeline.PutThirdPartyJobSuccessResultInput{JobId: aws.String(id), ClientToken: aws.String(src.ClientToken)})
	if s, _ := token(); s != http.StatusForbidden {
		t.Fatalf("after the result: %d, want 403", s)
	}
}
