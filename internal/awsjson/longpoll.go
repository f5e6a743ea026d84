package awsjson

import (
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// longPoll are the operations that wait server-side for work (up to
// --job-poll-wait): their latency is mostly the wait, so it has its own
// histogram, with buckets up to a minute, and stays out of
// pipelined_api_request_duration_seconds, where it would drown the
// latency of everything else.
var longPoll = map[string]bool{"PollForJobs": true, "PollForThirdPartyJobs": true}

func newPollHistogram() *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "pipelined_api_long_poll_duration_seconds", Help: "PollForJobs and PollForThirdPartyJobs latency, the long-poll wait included.",
		Buckets: []float64{.005, .025, .1, .25, .5, 1, 2.5, 5, 10, 15, 20, 30, 60},
	}, []string{"operation"})
}

// requestAttrs are the attributes of every log line of a request: its id,
// the access key id it was signed with (never the signature or secret:
// the id is what an operator looks up), and the remote address.
func requestAttrs(r *http.Request, reqID string) []any {
	return []any{"request_id", reqID, "access_key_id", accessKeyID(r), "remote_addr", r.RemoteAddr}
}

// maxAccessKeyID bounds what is logged of a claimed access key id.
const maxAccessKeyID = 128

// accessKeyID is the access key id a request claims in its Authorization
// header or its X-Amz-Credential query parameter ("" when none), as given:
// a failed request's key may not exist.
func accessKeyID(r *http.Request) string {
	cred := ""
	if auth := r.Header.Get("Authorization"); auth != "" {
		if _, after, ok := strings.Cut(auth, "Credential="); ok {
			cred = after
		}
	} else {
		cred = r.URL.Query().Get("X-Amz-Credential")
	}
	id, _, _ := strings.Cut(cred, "/")
	id, _, _ = strings.Cut(id, ",")
	id = strings.TrimSpace(id)
	if len(id) > maxAccessKeyID {
		id = id[:maxAccessKeyID]
	}
	return strings.Map(func(c rune) rune {
		if c < 0x20 || c == 0x7f {
			return '?'
		}
		return c
	}, id)
}
