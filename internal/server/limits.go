package server

import (
	"encoding/json"
	"encoding/xml"
	"log/slog"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/pipelined/pipelined/internal/awsjson"
	"github.com/pipelined/pipelined/internal/httplimit"
)

// LimitsConfig bounds what slow, stalled or numerous clients can hold of
// the server (internal/httplimit; README "Limits").
type LimitsConfig struct {
	httplimit.Config
	// MaxAPIBody bounds the CodePipeline API's request bodies: pipeline and
	// action type definitions may use all of it, other operations
	// awsjson.DefaultMaxOtherBody or this, whichever is smaller. Zero:
	// awsjson.DefaultMaxBody (4 MiB).
	MaxAPIBody int64
	// MaxUnverifiedBodyBytes bounds the API request bodies held in memory,
	// across requests, before their signatures are verified (beyond 64 KiB
	// each); past it requests are answered 503. Zero:
	// httplimit.DefaultBudget (64 MiB).
	MaxUnverifiedBodyBytes int64
}

// apiBodyOptions sets the API's body limits in o.
func (s *Server) apiBodyOptions(o awsjson.Options) awsjson.Options {
	o.MaxBody = s.cfg.Limits.MaxAPIBody
	o.BodyBudget = httplimit.NewBudget(s.cfg.Limits.MaxUnverifiedBodyBytes)
	return o
}

// newHTTPServer is the server's http.Server for h, and caps its listener.
func (s *Server) newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	s.listener = httplimit.Listener(s.listener, s.cfg.Limits.WithDefaults().MaxConnections, busyBody, log)
	srv := httplimit.Server(h, s.cfg.Limits.Config)
	srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	return srv
}

const busyMessage = "The server has too many connections open; retry shortly"

// busyBody is the 503 a connection beyond the cap gets, in the shape of the
// protocol its request speaks: the AWS JSON error for requests with an
// X-Amz-Target (CodePipeline, the connections APIs), the query protocol's
// XML error for STS, S3's XML error for S3, or text (the server's own
// paths, or a request that did not arrive in time).
func busyBody(r *http.Request) (contentType string, body []byte) {
	if r == nil {
		return "text/plain; charset=utf-8", []byte(busyMessage + "\n")
	}
	if r.Header.Get("X-Amz-Target") != "" {
		b, _ := json.Marshal(struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}{awsjson.ErrServiceUnavailable, busyMessage})
		return "application/x-amz-json-1.1", b
	}
	if signedFor(r, "sts") {
		b, _ := xml.Marshal(struct {
			XMLName xml.Name `xml:"https://sts.amazonaws.com/doc/2011-06-15/ ErrorResponse"`
			Error   struct {
				Type, Code, Message string
			}
			RequestID string `xml:"RequestId"`
		}{Error: struct{ Type, Code, Message string }{"Receiver", "ServiceUnavailable", busyMessage}, RequestID: uuid.NewString()})
		return "text/xml", b
	}
	if !signedFor(r, "s3") {
		return "text/plain; charset=utf-8", []byte(busyMessage + "\n")
	}
	b, _ := xml.Marshal(struct {
		XMLName   xml.Name `xml:"Error"`
		Code      string
		Message   string
		RequestID string `xml:"RequestId"`
	}{Code: "ServiceUnavailable", Message: busyMessage, RequestID: uuid.NewString()})
	return "application/xml", append([]byte(xml.Header), b...)
}

// signedFor tells whether r's signature (header or presigned URL) is
// scoped to service.
func signedFor(r *http.Request, service string) bool {
	scope := "/" + service + "/aws4_request"
	return strings.Contains(r.Header.Get("Authorization"), scope) ||
		strings.Contains(r.URL.Query().Get("X-Amz-Credential"), scope)
}
