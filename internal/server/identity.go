package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pipelined/pipelined/internal/federation"
	"github.com/pipelined/pipelined/internal/identity"
	"github.com/pipelined/pipelined/internal/oidc"
	"github.com/pipelined/pipelined/internal/oidcapi"
	"github.com/pipelined/pipelined/internal/pipelines"
	"github.com/pipelined/pipelined/internal/secrets"
)

// Workload identity: pipelined is an OIDC issuer (internal/oidc) whose
// tokens go to running jobs only (internal/identity), through Harness-shaped
// endpoints that also exchange them for AWS, GCP
// and Azure credentials (internal/oidcapi, internal/federation).

// IdentityConfig is the workload-identity part of Config.
type IdentityConfig struct {
	// OIDCAlgorithm signs ID tokens: RS256 (default) or ES256.
	OIDCAlgorithm string
	// OIDCKeyRotation is how long a signing key signs (default 24h).
	OIDCKeyRotation time.Duration
	// OIDCTokenTTL is the lifetime of ID tokens (default and maximum
	// accepted by the issuer: this value).
	OIDCTokenTTL time.Duration
	// AWSSTSEndpoint is where AssumeRoleWithWebIdentity goes ("": AWS's
	// regional endpoint of Region).
	AWSSTSEndpoint string
	// GCPSTSEndpoint and GCPIAMCredentialsEndpoint are GCP's token
	// exchange and IAM Credentials base URLs ("": Google's).
	GCPSTSEndpoint            string
	GCPIAMCredentialsEndpoint string
	// AzureTokenEndpoint is Microsoft Entra ID's authority, where
	// <endpoint>/<tenant>/oauth2/v2.0/token is ("": the public cloud's,
	// https://login.microsoftonline.com).
	AzureTokenEndpoint string
	// FederationMaxTotal bounds one exchange with its retries (0: 30s).
	FederationMaxTotal time.Duration
	// OIDCNow is the issuer's and the tokens' clock (tests).
	OIDCNow func() time.Time
}

// Bounds of the token lifetime flag.
const (
	minTokenTTL = 5 * time.Minute
	maxTokenTTL = 12 * time.Hour
)

// CheckTokenTTL validates --oidc-token-ttl.
func CheckTokenTTL(d time.Duration) error {
	if d != 0 && (d < minTokenTTL || d > maxTokenTTL) {
		return fmt.Errorf("the ID token lifetime must be between %s and %s, not %s", minTokenTTL, maxTokenTTL, d)
	}
	return nil
}

type identityParts struct {
	issuer *oidc.Issuer
	api    *oidcapi.Handler
}

func (s *Server) setupIdentity(ctx context.Context, sealer *secrets.Sealer, svc *pipelines.Service, reg prometheus.Registerer) (*identityParts, error) {
	c := s.cfg.Identity
	if err := CheckTokenTTL(c.OIDCTokenTTL); err != nil {
		return nil, err
	}
	ttl := c.OIDCTokenTTL
	if ttl == 0 {
		ttl = time.Hour
	}
	now := c.OIDCNow
	if now == nil {
		now = time.Now
	}
	iss, err := oidc.New(ctx, oidc.Config{
		Store: s.store, Sealer: sealer, Issuer: s.PublicURL,
		Algorithm: c.OIDCAlgorithm, RotationPeriod: c.OIDCKeyRotation, MaxTokenTTL: ttl,
		Claims: tokenClaims, Now: now, Logger: s.log,
	})
	if err != nil {
		return nil, fmt.Errorf("oidc issuer: %w", err)
	}
	ids := identity.New(identity.Config{
		Store: s.store, Signer: iss, Issuer: s.PublicURL, AccountID: s.cfg.AccountID, Region: s.cfg.Region,
		PipelineARN: svc.PipelineARN, TokenTTL: ttl, Now: now,
	})
	api := oidcapi.New(oidcapi.Config{
		Identity: ids, AccountID: s.cfg.AccountID, Logger: s.log, Registerer: reg,
		AWS: &federation.AWS{Endpoint: c.AWSSTSEndpoint, Region: s.cfg.Region, MaxTotal: c.FederationMaxTotal,
			HTTPClient: &http.Client{Timeout: 10 * time.Second}},
		GCP: &federation.GCP{STSEndpoint: c.GCPSTSEndpoint, IAMCredentialsEndpoint: c.GCPIAMCredentialsEndpoint, MaxTotal: c.FederationMaxTotal,
			HTTPClient: &http.Client{Timeout: 10 * time.Second}},
		Azure: &federation.Azure{Endpoint: c.AzureTokenEndpoint, MaxTotal: c.FederationMaxTotal,
			HTTPClient: &http.Client{Timeout: 10 * time.Second}},
	})
	return &identityParts{issuer: iss, api: api}, nil
}

// tokenClaims is the discovery document's claims_supported: every claim
// pipelined's ID tokens carry.
var tokenClaims = []string{
	"iss", "sub", "aud", "exp", "iat", "nbf", "jti",
	"account_id", "region", "pipeline_id", "pipeline_name", "pipeline_arn", "pipeline_version",
	"pipeline_execution_id", "execution_type", "stage", "action", "action_execution_id", "attempt",
	"action_type", "action_owner", "stage_type", "step_type", "trigger_type", "triggered_by",
	"triggered_by_name", "context", "job_id",
}
