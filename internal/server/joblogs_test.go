package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/codepipeline"

	"github.com/pipelined/pipelined/internal/identity"
	"github.com/pipelined/pipelined/internal/joblogs"
	"github.com/pipelined/pipelined/internal/server/servertest"
)

type appendAnswer struct {
	status  int
	acked   int64
	code    string
	message string
}

// putLog sends PUT /runner/v1/jobs/{jobID}/log?offset=N as a runner does.
func putLog(t *testing.T, srv *servertest.Instance, jobID, bearer, offset string, body []byte) appendAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, srv.URL+"/runner/v1/jobs/"+jobID+"/log?offset="+offset, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := srv.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var a struct {
		Acked   *int64 `json:"ackedLength"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(raw, &a); err != nil || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("PUT log: %d, not JSON: %s", resp.StatusCode, raw)
	}
	out := appendAnswer{status: resp.StatusCode, code: a.Code, message: a.Message}
	if a.Acked != nil {
		out.acked = *a.Acked
	} else {
		out.acked = -1
	}
	if resp.StatusCode != 200 && a.Message == "" {
		t.Errorf("PUT log: %d without a message: %s", resp.StatusCode, raw)
	}
	return out
}

func storedLog(t *testing.T, srv *servertest.Instance, jobID string) string {
	t.Helper()
	var b bytes.Buffer
	if err := srv.JobLogs().WriteTo(context.Background(), jobID, &b); err != nil {
		t.Fatalf("read log of %s: %v", jobID, err)
	}
	return b.String()
}

// TestJobLogAppend: the append contract runners code against, on both
// backends: appends at the stored length, duplicates and overlaps skipped,
// gaps refused with the acked length, job credentials required.
func TestJobLogAppend(t *testing.T) {
	servertest.EachBackend(t, func(t *testing.T, backend servertest.Options) {
		srv, c := engineServer(t, backend)
		ctx := context.Background()
		job, bearer := heldJob(t, c, "logs-append")
		id := *job.Id

		want := func(what string, got appendAnswer, status int, acked int64) {
			t.Helper()
			if got.status != status || got.acked != acked {
				t.Errorf("%s: %d acked %d (%s %s), want %d acked %d", what, got.status, got.acked, got.code, got.message, status, acked)
			}
		}
		want("first", putLog(t, srv, id, bearer, "0", []byte("one\ntw")), 200, 6)
		want("duplicate", putLog(t, srv, id, bearer, "0", []byte("one\ntw")), 200, 6)
		want("prefix of stored", putLog(t, srv, id, bearer, "2", []byte("e\n")), 200, 6)
		want("overlap", putLog(t, srv, id, bearer, "4", []byte("two\nthree\n")), 200, 14)
		// Reordered: the later piece comes first and is refused with the
		// acked length; the runner resends from there.
		want("gap", putLog(t, srv, id, bearer, "20", []byte("five\n")), 409, 14)
		want("missing piece", putLog(t, srv, id, bearer, "14", []byte("four\n")), 200, 19)
		want("empty", putLog(t, srv, id, bearer, "19", nil), 200, 19)
		// The embedded runner's entry follows the same rules.
		acked, err := srv.JobLogs().Append(ctx, id, 19, []byte("five\nsix"))
		if err != nil || acked != 27 {
			t.Errorf("Append: %d %v, want 27", acked, err)
		}
		acked, err = srv.JobLogs().Append(ctx, id, 30, []byte("x"))
		var gap *joblogs.GapError
		if !errors.As(err, &gap) || gap.Acked != 27 {
			t.Errorf("Append past the end: %d %v, want a gap at 27", acked, err)
		}
		if got := storedLog(t, srv, id); got != "one\ntwo\nthree\nfour\nfive\nsix" {
			t.Errorf("stored %q", got)
		}

		// Bad requests, named.
		a := putLog(t, srv, id, bearer, "-1", []byte("x"))
		if a.status != 400 || !strings.Contains(a.message, "offset") {
			t.Errorf("negative offset: %+v", a)
		}
		a = putLog(t, srv, id, bearer, "", []byte("x"))
		if a.status != 400 || !strings.Contains(a.message, "offset") {
			t.Errorf("no offset: %+v", a)
		}
		a = putLog(t, srv, id, bearer, "27", bytes.Repeat([]byte("x"), joblogs.MaxAppendBytes+1))
		if a.status != 413 {
			t.Errorf("too large: %+v", a)
		}
		if _, err := srv.JobLogs().Append(ctx, id, 27, make([]byte, joblogs.MaxAppendBytes+1)); !errors.Is(err, joblogs.ErrTooLarge) {
			t.Errorf("Append too large: %v", err)
		}

		// Credentials: none, a wrong nonce, another job's nonce for this
		// job, another job's credentials on this job's log.
		other, otherBearer := heldJob(t, c, "logs-other")
		want("no credentials", putLog(t, srv, id, "", "27", []byte("x")), 401, -1)
		want("wrong nonce", putLog(t, srv, id, identity.RequestToken(id, "nope"), "27", []byte("x")), 401, -1)
		want("other job's nonce", putLog(t, srv, id, identity.RequestToken(id, *other.Nonce), "27", []byte("x")), 401, -1)
		want("other job's credentials", putLog(t, srv, id, otherBearer, "27", []byte("x")), 403, -1)
		if got := storedLog(t, srv, id); got != "one\ntwo\nthree\nfour\nfive\nsix" {
			t.Errorf("refused appends changed the log: %q", got)
		}

		// A finished job's log takes nothing more, by either entry.
		if _, err := c.PutJobSuccessResult(ctx, &codepipeline.PutJobSuccessResultInput{JobId: job.Id}); err != nil {
			t.Fatal(err)
		}
		a = putLog(t, srv, id, bearer, "27", []byte("late\n"))
		if a.status != 403 || a.code != "JobNotInProgress" {
			t.Errorf("finished job: %+v", a)
		}
		if _, err := srv.JobLogs().Append(ctx, id, 27, []byte("late\n")); !errors.Is(err, joblogs.ErrJobNotRunning) {
			t.Errorf("Append to a finished job: %v", err)
		}
		if _, err := srv.JobLogs().Append(ctx, "00000000-0000-4000-8000-000000000000", 0, []byte("x")); !errors.Is(err, joblogs.ErrNoJob) {
			t.Errorf("Append to no job: %v", err)
		}
		// Finishing makes the held-back last line an event and compacts;
		// the bytes stay the same.
		if err := srv.JobLogs().Finish(ctx, id); err != nil {
			t.Fatal(err)
		}
		if got := storedLog(t, srv, id); got != "one\ntwo\nthree\nfour\nfive\nsix" {
			t.Errorf("after finish: %q", got)
		}
		if strings.Contains(srv.Logs(), "three") {
			t.Error("the server logged log contents")
		}
		_ = fmt.Sprint()
	})
}
