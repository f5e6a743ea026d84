package fedtest

import (
	"encoding/xml"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// DefaultAWSAudience is the audience AWS expects by default: the client
// ID of IAM OIDC providers created for STS.
const DefaultAWSAudience = "sts.amazonaws.com"

// AWSSTSConfig configures a fake STS.
type AWSSTSConfig struct {
	// Issuer is the ID token issuer, the one IAM OIDC provider of the
	// fake's account (required). Tokens are verified with the keys its
	// discovery document points to.
	Issuer string
	// Audience is the provider's client ID, which the token's aud must
	// contain ("" is DefaultAWSAudience).
	Audience string
	// Conditions, when set, emulates the role's trust policy: a non-nil
	// error answers AccessDenied (403). It sees the verified claims.
	Conditions func(claims map[string]any, roleARN string) error
	// HTTPClient fetches the issuer's discovery document and JWKS (nil:
	// http.DefaultClient).
	HTTPClient *http.Client
	// Now is the clock for token and credential expiry (nil: time.Now).
	Now func() time.Time
}

// AWSSTS is a fake AWS STS speaking the Query protocol (form POST, XML
// answers) for AssumeRoleWithWebIdentity and GetCallerIdentity. Point an
// STS client's BaseEndpoint at URL.
type AWSSTS struct {
	// URL is the endpoint.
	URL string

	cfg      AWSSTSConfig
	verifier verifier

	recorder
	issued map[string]awsSession // by access key ID
}

type awsSession struct {
	secret, token string
	expires       time.Time
	arn, userID   string
	account       string
}

// NewAWSSTS starts a fake STS for the test.
func NewAWSSTS(t testing.TB, cfg AWSSTSConfig) *AWSSTS {
	t.Helper()
	if cfg.Issuer == "" {
		t.Fatal("fedtest: AWSSTSConfig.Issuer is required")
	}
	if cfg.Audience == "" {
		cfg.Audience = DefaultAWSAudience
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &AWSSTS{
		cfg:      cfg,
		verifier: verifier{issuer: cfg.Issuer, client: cfg.HTTPClient, now: cfg.Now},
		issued:   map[string]awsSession{},
	}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *AWSSTS) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		stsError(w, http.StatusMethodNotAllowed, "InvalidAction", "STS's Query protocol uses POST")
		return
	}
	if err := r.ParseForm(); err != nil {
		stsError(w, http.StatusBadRequest, "MalformedQueryString", err.Error())
		return
	}
	switch action := r.PostForm.Get("Action"); action {
	case "AssumeRoleWithWebIdentity":
		s.assumeRole(w, r)
	case "GetCallerIdentity":
		s.callerIdentity(w, r)
	default:
		stsError(w, http.StatusBadRequest, "InvalidAction", fmt.Sprintf("Could not find operation %s for version 2011-06-15", action))
	}
}

var (
	roleARNPattern     = regexp.MustCompile(`^arn:aws[a-z-]*:iam::(\d{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]{1,64})$`)
	sessionNamePattern = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
)

func (s *AWSSTS) assumeRole(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	f, failed := s.script.next()
	s.mu.Unlock()
	if failed {
		if f.status == 0 {
			dropConnection(w)
			return
		}
		stsError(w, f.status, f.code, f.message)
		return
	}

	form := r.PostForm
	roleARN, session, token := form.Get("RoleArn"), form.Get("RoleSessionName"), form.Get("WebIdentityToken")
	m := roleARNPattern.FindStringSubmatch(roleARN)
	if m == nil {
		stsError(w, http.StatusBadRequest, "ValidationError", fmt.Sprintf("1 validation error detected: Value '%s' at 'roleArn' failed to satisfy constraint: Member must be a role ARN", roleARN))
		return
	}
	account, roleName := m[1], m[2]
	if !sessionNamePattern.MatchString(session) {
		stsError(w, http.StatusBadRequest, "ValidationError", fmt.Sprintf("1 validation error detected: Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]{2,64}", session))
		return
	}
	duration := time.Hour
	if d := form.Get("DurationSeconds"); d != "" {
		n, err := strconv.Atoi(d)
		if err != nil || n < 900 || n > 43200 {
			stsError(w, http.StatusBadRequest, "ValidationError", fmt.Sprintf("1 validation error detected: Value '%s' at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200", d))
			return
		}
		duration = time.Duration(n) * time.Second
	}
	if len(token) < 4 || len(token) > 20000 {
		stsError(w, http.StatusBadRequest, "ValidationError", "1 validation error detected: Value at 'webIdentityToken' failed to satisfy constraint: Member must have length between 4 and 20000")
		return
	}

	claims, verr := s.verifier.verify(r.Context(), token)
	if verr != nil {
		// The error codes AWS answers; the messages stand in for AWS's,
		// more precise so that a failing test says why.
		switch verr.kind {
		case expiredToken:
			stsError(w, http.StatusBadRequest, "ExpiredTokenException", "Token expired: "+verr.msg)
		case issuerUnreachable:
			stsError(w, http.StatusBadRequest, "IDPCommunicationError", "Couldn't retrieve verification key from your identity provider: "+verr.msg)
		default:
			stsError(w, http.StatusBadRequest, "InvalidIdentityToken", verr.msg)
		}
		return
	}
	if !hasAudience(claims, s.cfg.Audience) {
		stsError(w, http.StatusBadRequest, "InvalidIdentityToken", fmt.Sprintf("Incorrect token audience (want %q)", s.cfg.Audience))
		return
	}
	s.mu.Lock()
	s.claims = claims
	s.mu.Unlock()
	if s.cfg.Conditions != nil {
		if err := s.cfg.Conditions(maps.Clone(claims), roleARN); err != nil {
			stsError(w, http.StatusForbidden, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity: "+err.Error())
			return
		}
	}

	sub, _ := claims["sub"].(string)
	roleID := "AROA" + randomID(17)
	sess := awsSession{
		secret:  randomID(40),
		token:   "FwoGZXIvYXdzEFAKE" + randomID(120),
		expires: s.cfg.Now().Add(duration).UTC().Truncate(time.Second),
		arn:     "arn:aws:sts::" + account + ":assumed-role/" + roleName + "/" + session,
		userID:  roleID + ":" + session,
		account: account,
	}
	akid := "ASIA" + randomID(16)
	s.mu.Lock()
	s.issued[akid] = sess
	s.mu.Unlock()

	var out assumeRoleResponse
	res := &out.Result
	res.SubjectFromWebIdentityToken = sub
	res.Audience = s.cfg.Audience
	res.AssumedRoleUser.Arn = sess.arn
	res.AssumedRoleUser.AssumedRoleID = sess.userID
	res.Credentials.AccessKeyID = akid
	res.Credentials.SecretAccessKey = sess.secret
	res.Credentials.SessionToken = sess.token
	res.Credentials.Expiration = sess.expires.Format(time.RFC3339)
	res.Provider = "arn:aws:iam::" + account + ":oidc-provider/" + issuerHostPath(s.cfg.Issuer)
	out.RequestID = requestID()
	writeXML(w, http.StatusOK, out)
}

// callerIdentity answers GetCallerIdentity for credentials the fake
// issued. The fake does not verify the SigV4 signature: it only reads the
// access key ID from the Authorization header's Credential and checks the
// session token, which is enough to tell its own credentials from others.
func (s *AWSSTS) callerIdentity(w http.ResponseWriter, r *http.Request) {
	akid := ""
	if _, rest, ok := strings.Cut(r.Header.Get("Authorization"), "Credential="); ok {
		akid, _, _ = strings.Cut(rest, "/")
	}
	s.mu.Lock()
	sess, ok := s.issued[akid]
	s.mu.Unlock()
	if !ok || r.Header.Get("X-Amz-Security-Token") != sess.token {
		stsError(w, http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid.")
		return
	}
	if s.cfg.Now().After(sess.expires) {
		stsError(w, http.StatusBadRequest, "ExpiredToken", "The security token included in the request is expired")
		return
	}
	var out callerIdentityResponse
	out.Result.Arn = sess.arn
	out.Result.UserID = sess.userID
	out.Result.Account = sess.account
	out.RequestID = requestID()
	writeXML(w, http.StatusOK, out)
}

// issuerHostPath is the issuer URL without its scheme, as IAM names OIDC
// providers.
func issuerHostPath(issuer string) string {
	u, err := url.Parse(issuer)
	if err != nil {
		return issuer
	}
	return u.Host + strings.TrimRight(u.Path, "/")
}

// The XML documents of STS's Query protocol.
type assumeRoleResponse struct {
	XMLName xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ AssumeRoleWithWebIdentityResponse"`
	Result  struct {
		SubjectFromWebIdentityToken string
		Audience                    string
		AssumedRoleUser             struct {
			Arn           string
			AssumedRoleID string `xml:"AssumedRoleId"`
		}
		Credentials struct {
			SessionToken    string
			SecretAccessKey string
			Expiration      string
			AccessKeyID     string `xml:"AccessKeyId"`
		}
		Provider string
	} `xml:"AssumeRoleWithWebIdentityResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

type callerIdentityResponse struct {
	XMLName xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ GetCallerIdentityResponse"`
	Result  struct {
		Arn     string
		UserID  string `xml:"UserId"`
		Account string
	} `xml:"GetCallerIdentityResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

type errorResponse struct {
	XMLName xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ ErrorResponse"`
	Error   struct {
		Type    string
		Code    string
		Message string
	}
	RequestID string `xml:"RequestId"`
}

// stsError answers an STS ErrorResponse. Type is Sender for the client's
// errors and Receiver for the service's, as AWS sets it.
func stsError(w http.ResponseWriter, status int, code, msg string) {
	var out errorResponse
	out.Error.Type = "Sender"
	if status >= 500 {
		out.Error.Type = "Receiver"
	}
	out.Error.Code = code
	out.Error.Message = msg
	out.RequestID = requestID()
	writeXML(w, status, out)
}

func writeXML(w http.ResponseWriter, status int, v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = w.Write(append([]byte(xml.Header), b...))
}

// requestID is a random request ID shaped like AWS's (a UUID).
func requestID() string {
	id := strings.ToLower(randomID(32))
	return id[:8] + "-" + id[8:12] + "-" + id[12:16] + "-" + id[16:20] + "-" + id[20:]
}
