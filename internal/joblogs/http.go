package joblogs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/pipelined/pipelined/internal/identity"
)

// Handler serves PUT /runner/v1/jobs/{jobId}/log?offset=N: the body (at
// most MaxAppendBytes of raw output) is the log from byte offset N on.
// The caller proves it holds the job with "Authorization: Bearer
// <jobId>:<nonce>", as for ID tokens (internal/identity); the job must be
// in progress. Answers: 200 {"ackedLength": N}; 409 {"ackedLength": N,
// "message": ...} when the offset is past the stored length; otherwise a
// status with {"code": ..., "message": ...}.
func (s *Service) Handler() http.Handler {
	return http.HandlerFunc(s.serveAppend)
}

// Path is the route of the append endpoint in http.ServeMux syntax.
const Path = "PUT /runner/v1/jobs/{jobId}/log"

func (s *Service) serveAppend(w http.ResponseWriter, r *http.Request) {
	jobID := r.PathValue("jobId")
	tok, ok := bearer(r)
	if !ok {
		writeError(w, http.StatusUnauthorized, "Unauthorized", `Missing credentials: send "Authorization: Bearer <jobId>:<nonce>" of an acknowledged, in-progress job`)
		return
	}
	tokJob, nonce, _ := identity.ParseRequestToken(tok)
	run, err := s.cfg.Identity.Authenticate(r.Context(), tokJob, nonce)
	switch {
	case errors.Is(err, identity.ErrUnauthenticated):
		writeError(w, http.StatusUnauthorized, "Unauthorized", "The credentials are not those of a job (job id and its current nonce)")
		return
	case errors.Is(err, identity.ErrJobNotRunning):
		writeError(w, http.StatusForbidden, "JobNotInProgress", fmt.Sprintf("Job %s is not in progress: its log takes no more output", tokJob))
		return
	case err != nil:
		s.internalError(w, r, tokJob, err)
		return
	}
	if tokJob != jobID {
		writeError(w, http.StatusForbidden, "AccessDenied", "The credentials are those of another job")
		return
	}
	offset, err := strconv.ParseInt(r.URL.Query().Get("offset"), 10, 64)
	if err != nil || offset < 0 {
		writeError(w, http.StatusBadRequest, "InvalidParameter", "offset: required, a whole number of bytes, 0 or more")
		return
	}
	if r.ContentLength > MaxAppendBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "TooLarge", fmt.Sprintf("body: at most %d bytes per request", MaxAppendBytes))
		return
	}
	size := r.ContentLength
	if size < 0 {
		size = 64 << 10
	}
	body, err := readAll(http.MaxBytesReader(w, r.Body, MaxAppendBytes), int(size))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "TooLarge", fmt.Sprintf("body: at most %d bytes per request", MaxAppendBytes))
			return
		}
		writeError(w, http.StatusBadRequest, "InvalidRequest", "body: could not be read")
		return
	}
	acked, err := s.appendJob(r.Context(), run.Job, offset, body)
	var gap *GapError
	switch {
	case errors.As(err, &gap):
		writeJSON(w, http.StatusConflict, map[string]any{"ackedLength": gap.Acked, "code": "OffsetAhead", "message": gap.Error()[len("joblogs: "):]})
	case errors.Is(err, ErrJobNotRunning):
		writeError(w, http.StatusForbidden, "JobNotInProgress", fmt.Sprintf("Job %s's log is finished: it takes no more output", jobID))
	case err != nil:
		s.internalError(w, r, jobID, err)
	default:
		writeJSON(w, http.StatusOK, map[string]any{"ackedLength": acked})
	}
}

// readAll reads r into a buffer of the expected size (one allocation for
// a body with a Content-Length).
func readAll(r io.Reader, size int) ([]byte, error) {
	buf := make([]byte, 0, size+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

func (s *Service) internalError(w http.ResponseWriter, r *http.Request, jobID string, err error) {
	// The error names the job and the store's failure, never log contents.
	s.log.LogAttrs(r.Context(), slog.LevelError, "log append failed", slog.String("job_id", jobID), slog.Any("err", err))
	writeError(w, http.StatusInternalServerError, "InternalError", "Internal error; the server's log has the details")
}

func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"code": code, "message": message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
