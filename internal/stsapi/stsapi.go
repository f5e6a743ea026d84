// Package stsapi serves the one STS operation every AWS tool uses to learn
// who it is and in which account: GetCallerIdentity, over STS's query
// protocol (POST / with a form body Action=GetCallerIdentity&Version=2011-06-15,
// SigV4 for service "sts"), on the server's shared listener. Terraform's AWS
// provider calls it to validate its credentials and to learn the account id
// it builds ARNs with; `aws sts get-caller-identity` is how a new user checks
// their setup.
//
// The other STS actions answer the query protocol's InvalidAction: the
// server issues no temporary credentials through STS (job credentials come
// with the job, see internal/artifacts).
package stsapi

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/pipelined/pipelined/internal/sigv4"
)

const (
	// SigningService is the service name STS requests are signed for.
	SigningService = "sts"
	// Version is the STS API version, the one the SDKs send.
	Version = "2011-06-15"
	// namespace is the XML namespace of every STS response.
	namespace = "https://sts.amazonaws.com/doc/2011-06-15/"
	// maxBody bounds a request body: GetCallerIdentity has no parameters
	// beyond Action and Version, and no STS request comes near it.
	maxBody  = 64 << 10
	formType = "application/x-www-form-urlencoded"
)

// Handler serves STS on POST /.
type Handler struct {
	// Verifier checks signatures; its Service must be SigningService.
	Verifier *sigv4.Verifier
	// AccountID is the account of every principal this server knows.
	AccountID string
	Logger    *slog.Logger
}

// Matches tells whether a request on the shared "/" route is meant for STS:
// a POST / that names no JSON target and carries a form body, or whose
// Authorization is scoped to service sts. The CodePipeline API (AWS JSON
// 1.1) always sends X-Amz-Target and a JSON content type.
func Matches(r *http.Request) bool {
	if r.Method != http.MethodPost || r.URL.Path != "/" || r.Header.Get("X-Amz-Target") != "" {
		return false
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == formType {
		return true
	}
	return scopeService(r.Header.Get("Authorization")) == SigningService
}

// scopeService is the service of an Authorization header's credential
// scope ("" when there is none to read).
func scopeService(authz string) string {
	_, cred, ok := strings.Cut(authz, "Credential=")
	if !ok {
		return ""
	}
	cred, _, _ = strings.Cut(cred, ",")
	parts := strings.Split(strings.TrimSpace(cred), "/")
	if len(parts) != 5 {
		return ""
	}
	return parts[3]
}

// Identity is what GetCallerIdentity answers for a credential.
type Identity struct {
	Arn, UserID, Account string
}

// identify derives the caller's identity from its verified credential. The
// root credentials are the account's root user, as on AWS, whose UserId is
// the account id; any other credential (a worker key, an IAM user of the
// server's making) is identified by its access key id, which is not a
// secret.
func (h *Handler) identify(cred sigv4.Credential) Identity {
	id := Identity{Arn: cred.Principal, UserID: cred.AccessKeyID, Account: h.AccountID}
	if strings.HasSuffix(cred.Principal, ":root") {
		id.UserID = h.AccountID
	}
	return id
}

func (h *Handler) log() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := uuid.NewString()
	w.Header().Set("x-amzn-RequestId", reqID)
	out, err := h.serve(r)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			h.log().Error("sts: internal error", "request_id", reqID, "err", err)
			e = &Error{Status: http.StatusInternalServerError, Type: "Receiver", Code: "InternalFailure",
				Message: "The request processing has failed because of an unknown error, exception or failure."}
		} else {
			h.log().Info("sts: request failed", "request_id", reqID, "code", e.Code, "message", e.Message)
		}
		writeXML(w, e.Status, errorResponse{Xmlns: namespace, Error: xmlError{Type: e.Type, Code: e.Code, Message: e.Message}, RequestID: reqID})
		return
	}
	writeXML(w, http.StatusOK, getCallerIdentityResponse{
		Xmlns:    namespace,
		Result:   identityResult{Arn: out.Arn, UserID: out.UserID, Account: out.Account},
		Metadata: responseMetadata{RequestID: reqID},
	})
}

func (h *Handler) serve(r *http.Request) (Identity, error) {
	if r.Method != http.MethodPost {
		return Identity{}, senderError(http.StatusBadRequest, "InvalidAction", "STS accepts only POST requests on this server.")
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return Identity{}, senderError(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "Request body is larger than 65536 bytes.")
		}
		return Identity{}, senderError(http.StatusBadRequest, "MalformedInput", "Cannot read the request body.")
	}
	cred, err := h.authenticate(r.Context(), r, body)
	if err != nil {
		return Identity{}, err
	}
	params, err := url.ParseQuery(string(body))
	if err != nil {
		return Identity{}, senderError(http.StatusBadRequest, "MalformedInput", "The request body is not a valid application/x-www-form-urlencoded form.")
	}
	action, version := params.Get("Action"), params.Get("Version")
	switch {
	case action == "":
		return Identity{}, senderError(http.StatusBadRequest, "MissingAction", "Missing Action")
	case version == "":
		return Identity{}, senderError(http.StatusBadRequest, "MissingParameter", "The request must contain the parameter Version")
	case action != "GetCallerIdentity" || version != Version:
		return Identity{}, senderError(http.StatusBadRequest, "InvalidAction",
			"Could not find operation "+clip(action)+" for version "+clip(version))
	}
	return h.identify(cred), nil
}

// authenticate verifies the signature as the rest of the server does, with
// the query protocol's error codes. As on the JSON API, the signature must
// cover the body and the date, and presigned URLs are not taken on POST.
func (h *Handler) authenticate(ctx context.Context, r *http.Request, body []byte) (sigv4.Credential, error) {
	if q := r.URL.Query(); q.Has("X-Amz-Signature") || q.Has("X-Amz-Credential") || q.Has("X-Amz-Algorithm") {
		return sigv4.Credential{}, senderError(http.StatusBadRequest, "IncompleteSignature",
			"Query-string authentication (a presigned URL) is not accepted on POST: sign the request with an Authorization header (AWS4-HMAC-SHA256), as the AWS SDKs and CLI do.")
	}
	res, err := h.Verifier.Verify(ctx, r, body)
	if err != nil {
		var ve *sigv4.Error
		if !errors.As(err, &ve) {
			return sigv4.Credential{}, err
		}
		return sigv4.Credential{}, queryError(ve)
	}
	if len(res.PayloadHash) != 64 {
		return sigv4.Credential{}, senderError(http.StatusBadRequest, "IncompleteSignature",
			"The request payload must be signed: x-amz-content-sha256 '"+clip(res.PayloadHash)+"' is not accepted by this API.")
	}
	dateHeader, dateName := "x-amz-date", "X-Amz-Date"
	if len(r.Header.Values("X-Amz-Date")) == 0 {
		dateHeader, dateName = "date", "Date"
	}
	if !slices.Contains(res.SignedHeaders, dateHeader) {
		return sigv4.Credential{}, senderError(http.StatusForbidden, "SignatureDoesNotMatch",
			"'"+dateName+"' must be a 'SignedHeader' in the AWS Authorization.")
	}
	return res.Credential, nil
}

// queryError maps a verification failure to STS's error codes and statuses.
func queryError(e *sigv4.Error) *Error {
	switch e.Kind {
	case sigv4.MissingAuth:
		return senderError(http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token")
	case sigv4.IncompleteSignature:
		return senderError(http.StatusBadRequest, "IncompleteSignature", e.Message)
	case sigv4.UnknownAccessKey, sigv4.InvalidToken, sigv4.KeyNotAccepted:
		return senderError(http.StatusForbidden, "InvalidClientTokenId", e.Message)
	case sigv4.ExpiredToken:
		return senderError(http.StatusBadRequest, "ExpiredToken", e.Message)
	default: // SignatureMismatch, RequestExpired, WrongScope: STS says SignatureDoesNotMatch for all three
		return senderError(http.StatusForbidden, "SignatureDoesNotMatch", e.Message)
	}
}

// Error is an STS error response: Type is "Sender" (the client's fault) or
// "Receiver".
type Error struct {
	Status              int
	Type, Code, Message string
}

func (e *Error) Error() string { return "sts: " + e.Code + ": " + e.Message }

func senderError(status int, code, msg string) *Error {
	return &Error{Status: status, Type: "Sender", Code: code, Message: msg}
}

// clip shortens client-supplied text quoted back in a message.
func clip(s string) string {
	const max = 128
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "..."
	}
	return s
}

// The response shapes, as STS writes them.
type getCallerIdentityResponse struct {
	XMLName  xml.Name         `xml:"GetCallerIdentityResponse"`
	Xmlns    string           `xml:"xmlns,attr"`
	Result   identityResult   `xml:"GetCallerIdentityResult"`
	Metadata responseMetadata `xml:"ResponseMetadata"`
}

type identityResult struct {
	Arn     string `xml:"Arn"`
	UserID  string `xml:"UserId"`
	Account string `xml:"Account"`
}

type responseMetadata struct {
	RequestID string `xml:"RequestId"`
}

type errorResponse struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	Error     xmlError `xml:"Error"`
	RequestID string   `xml:"RequestId"`
}

type xmlError struct {
	Type    string `xml:"Type"`
	Code    string `xml:"Code"`
	Message string `xml:"Message"`
}

func writeXML(w http.ResponseWriter, status int, v any) {
	body, err := xml.MarshalIndent(v, "", "  ")
	if err != nil { // the shapes above always marshal
		status, body = http.StatusInternalServerError, nil
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	_, _ = io.WriteString(w, "\n")
}
