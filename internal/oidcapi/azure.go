package oidcapi

import (
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/pipelined/pipelined/internal/federation"
	"github.com/pipelined/pipelined/internal/identity"
)

// Azure: Harness's AzureOidcTokenRequestDTO and
// AzureOidcCredentialExchangeRequestDTO, exchanged at Microsoft Entra ID.

type azureDTO struct {
	AccountID string `json:"accountId"`
	// TenantID and ClientID name the app the token is for; Harness's
	// id-token request carries them, they do not enter the token (its
	// claims come from the job), and they are checked for form.
	TenantID string `json:"tenantId"`
	ClientID string `json:"clientId"`
	// Audience is the aud claim: AzureAudience unless the app's federated
	// credential names another (a sovereign cloud's).
	Audience string `json:"audience"`
	// SubscriptionID and ResourceGroup are Harness's; like TenantID they
	// are checked for form and do not enter the token.
	SubscriptionID string            `json:"subscriptionId"`
	ResourceGroup  string            `json:"resourceGroup"`
	Attributes     map[string]string `json:"oidcIdTokenCustomAttributesStructure"`
}

type idTokenAzureRequest struct {
	DTO      *azureDTO       `json:"azureOidcTokenRequestDTO"`
	Lifetime json.RawMessage `json:"lifetime"`
}

type azureAccessRequest struct {
	TenantID string `json:"tenantId"`
	ClientID string `json:"clientId"`
	// Resource is the resource's App ID URI or URL, or a scope ending in
	// /.default ("": Azure Resource Manager).
	Resource    string                      `json:"resource"`
	OidcToken   string                      `json:"oidcToken"`
	RetryPolicy *federation.RetryPolicyJSON `json:"retryPolicy"`
	DTO         *azureDTO                   `json:"azureOidcTokenRequestDTO"`
}

const azureDTOPath = "azureOidcTokenRequestDTO"

var (
	azureSubscription  = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	azureResourceGroup = regexp.MustCompile(`^[-\w._()]{1,90}$`)
)

// azureFields validates an Azure DTO and returns the audience of its token.
func (h *Handler) azureFields(d *azureDTO) (string, []fieldError) {
	if d == nil {
		return federation.AzureAudience, nil
	}
	const p = azureDTOPath + "."
	errs := h.checkAccount(p+"accountId", d.AccountID)
	if d.TenantID != "" {
		if msg := federation.CheckAzureTenant(d.TenantID); msg != "" {
			errs = append(errs, fieldError{p + "tenantId", msg})
		}
	}
	if d.ClientID != "" {
		if msg := federation.CheckAzureClient(d.ClientID); msg != "" {
			errs = append(errs, fieldError{p + "clientId", msg})
		}
	}
	if d.SubscriptionID != "" && !azureSubscription.MatchString(d.SubscriptionID) {
		errs = append(errs, fieldError{p + "subscriptionId", "must be a subscription id, a GUID"})
	}
	if d.ResourceGroup != "" && !azureResourceGroup.MatchString(d.ResourceGroup) {
		errs = append(errs, fieldError{p + "resourceGroup", "must be 1 to 90 letters, digits, '-', '_', '.', '(' or ')'"})
	}
	aud := federation.AzureAudience
	if d.Audience != "" {
		if err := identity.CheckAudience(d.Audience); err != nil {
			errs = append(errs, fieldError{p + "audience", err.Error()})
		}
		aud = d.Audience
	}
	return aud, errs
}

func (h *Handler) idTokenAzure(c *call, body []byte) (any, error) {
	var req idTokenAzureRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	lifetime, errs := h.parseLifetime(req.Lifetime)
	aud, derrs := h.azureFields(req.DTO)
	errs = append(errs, derrs...)
	var attrs map[string]string
	if req.DTO != nil {
		attrs = req.DTO.Attributes
	}
	tok, _, err := h.mint(c, aud, azureDTOPath+".oidcIdTokenCustomAttributesStructure", attrs, errs, lifetime)
	return tok, err
}

func (h *Handler) azureAccess(c *call, body []byte) (any, error) {
	var req azureAccessRequest
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	var errs []fieldError
	if msg := federation.CheckAzureTenant(req.TenantID); msg != "" {
		errs = append(errs, fieldError{"tenantId", "is required: " + msg})
	}
	if msg := federation.CheckAzureClient(req.ClientID); msg != "" {
		errs = append(errs, fieldError{"clientId", "is required: " + msg})
	}
	scope, msg := federation.AzureScope(req.Resource)
	if msg != "" {
		errs = append(errs, fieldError{"resource", msg})
	}
	policy, perrs := federation.ParseRetryPolicy(req.RetryPolicy)
	for _, e := range perrs {
		errs = append(errs, fieldError{e.Field, e.Message})
	}
	aud, derrs := h.azureFields(req.DTO)
	errs = append(errs, derrs...)
	var attrs map[string]string
	if req.DTO != nil {
		attrs = req.DTO.Attributes
	}
	if len(errs) > 0 {
		return nil, badRequest(errs...)
	}
	tok, err := h.subjectTokenField(c, "oidcToken", req.OidcToken, aud, azureDTOPath+".oidcIdTokenCustomAttributesStructure", attrs)
	if err != nil {
		return nil, err
	}
	if h.cfg.Azure == nil {
		return nil, &apiError{status: 501, code: "UNSUPPORTED_OPERATION", message: "The Azure exchange is not configured on this server"}
	}
	out, err := h.cfg.Azure.ClientCredentials(c.r.Context(), federation.AzureRequest{
		TenantID: req.TenantID, ClientID: req.ClientID, Scope: scope, Assertion: tok,
	}, policy)
	if err != nil {
		return nil, providerFailure(err)
	}
	c.log.Info("exchanged an ID token at Microsoft Entra ID", "tenant_id", req.TenantID, "client_id", req.ClientID, "scope", scope, "expires_in", out.ExpiresIn)
	return map[string]any{
		"token_type": out.TokenType, "expires_in": out.ExpiresIn, "ext_expires_in": out.ExtExpiresIn, "access_token": out.AccessToken,
	}, nil
}

// subjectTokenField is subjectToken for a request whose given token is in
// another field than oidcIdToken (Harness's Azure request calls it
// oidcToken): errors name that field.
func (h *Handler) subjectTokenField(c *call, field, given, audience, attrPath string, attrs map[string]string) (string, error) {
	if given == "" {
		tok, _, err := h.mint(c, audience, attrPath, attrs, nil, 0)
		return tok, err
	}
	claims, err := h.cfg.Identity.VerifyFor(c.r.Context(), c.run, given)
	if err != nil {
		return "", badRequest(fieldError{field, tokenProblem(err)})
	}
	var errs []fieldError
	if claims.Audience != audience {
		errs = append(errs, fieldError{field, fmt.Sprintf("has audience %q; this exchange needs %q", claims.Audience, audience)})
	}
	errs = append(errs, checkAttributes(attrPath, attrs, claims)...)
	if len(errs) > 0 {
		return "", badRequest(errs...)
	}
	return given, nil
}

// parseLifetime reads a token request's lifetime: absent or null is the
// server's --oidc-token-ttl; otherwise a whole number of seconds from
// identity.MinTokenLifetime up to that TTL (a caller may shorten its
// token, never lengthen it).
func (h *Handler) parseLifetime(raw json.RawMessage) (time.Duration, []fieldError) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	max := h.cfg.Identity.TokenTTL()
	bounds := fmt.Sprintf("must be a whole number of seconds from %d to %d (the server's --oidc-token-ttl)",
		int64(identity.MinTokenLifetime/time.Second), int64(max/time.Second))
	var n json.Number
	if raw[0] == '"' || json.Unmarshal(raw, &n) != nil {
		return 0, []fieldError{{"lifetime", bounds}}
	}
	secs, err := n.Int64()
	if err != nil || secs < int64(identity.MinTokenLifetime/time.Second) || secs > int64(max/time.Second) {
		return 0, []fieldError{{"lifetime", bounds}}
	}
	return time.Duration(secs) * time.Second, nil
}
