package s3api

import (
	"io"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the embedded artifact store: requests by method and outcome,
// and the bytes of request and response bodies. Labels are bounded: the
// HTTP method (one of S3's five, else "other") and the S3 error code (the
// store answers a fixed set) or "" for success; never a bucket or key.
type metrics struct {
	requests *prometheus.CounterVec
	received *prometheus.CounterVec
	sent     *prometheus.CounterVec
}

// RegisterMetrics registers the store's metrics with reg; until it is
// called, nothing is counted.
func (h *Handler) RegisterMetrics(reg prometheus.Registerer) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipelined_s3_requests_total", Help: "Requests to the embedded artifact store, by HTTP method and S3 error code (empty: success).",
		}, []string{"method", "code"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipelined_s3_received_bytes_total", Help: "Request body bytes the embedded artifact store read (uploads), by HTTP method.",
		}, []string{"method"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pipelined_s3_sent_bytes_total", Help: "Response body bytes the embedded artifact store wrote (downloads, listings, errors), by HTTP method.",
		}, []string{"method"}),
	}
	reg.MustRegister(m.requests, m.received, m.sent)
	h.metrics = m
}

func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodHead:
		return m
	}
	return "other"
}

// observe counts one request.
func (m *metrics) observe(method, code string, received, sent int64) {
	if m == nil {
		return
	}
	method = methodLabel(method)
	m.requests.WithLabelValues(method, code).Inc()
	m.received.WithLabelValues(method).Add(float64(received))
	m.sent.WithLabelValues(method).Add(float64(sent))
}

// countingBody counts what a handler reads of a request body.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// countingWriter counts what a handler writes of a response body. It
// keeps the underlying writer's ReadFrom (sendfile for object downloads)
// and reaches its Flush through Unwrap (http.ResponseController).
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
	}
	w.n += n
	return n, err
}

func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// refusedAttrs describe a refused request for its log line: what an
// operator needs to find the caller, and no secret (the path, never the
// query, which holds a presigned URL's signature).
func refusedAttrs(r *http.Request) []any {
	return []any{"method", r.Method, "path", r.URL.Path, "access_key_id", claimedAccessKeyID(r), "remote_addr", r.RemoteAddr}
}

// claimedAccessKeyID is the access key id a request claims (Authorization
// header or X-Amz-Credential), "" when none; bounded and without control
// characters.
func claimedAccessKeyID(r *http.Request) string {
	cred := ""
	if auth := r.Header.Get("Authorization"); auth != "" {
		_, cred, _ = strings.Cut(auth, "Credential=")
	} else {
		cred = r.URL.Query().Get("X-Amz-Credential")
	}
	id, _, _ := strings.Cut(cred, "/")
	id, _, _ = strings.Cut(id, ",")
	id = strings.TrimSpace(id)
	if len(id) > 128 {
		id = id[:128]
	}
	return strings.Map(func(c rune) rune {
		if c < 0x20 || c == 0x7f {
			return '?'
		}
		return c
	}, id)
}
