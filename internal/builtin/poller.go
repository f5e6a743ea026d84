package builtin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/engine"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// PollerLease is the lease whose holder polls S3 sources for changes.
const PollerLease = "builtin-s3-source-poller"

const pollerLeaseTTL = 30 * time.Second

// poll checks the sources every PollInterval while this replica holds the
// poller lease, and releases the lease when ctx ends.
func (r *Runner) poll(ctx context.Context) {
	holder := "s3-poller-" + uuid.NewString()
	defer func() {
		if err := r.st.ReleaseLease(context.WithoutCancel(ctx), PollerLease, holder); err != nil {
			r.log.Warn("release source poller lease", "err", err)
		}
	}()
	tick := time.NewTicker(min(r.o.PollInterval, pollerLeaseTTL/3))
	defer tick.Stop()
	var lastPoll time.Time
	lease := &pollLease{r: r, holder: holder}
	for {
		if lease.renew(ctx) && time.Since(lastPoll) >= r.o.PollInterval {
			lastPoll = time.Now()
			r.pollOnce(ctx, lease)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// pollLease tracks the poller lease; renew is cheap to call often.
type pollLease struct {
	r         *Runner
	holder    string
	held      bool
	renewedAt time.Time
}

// renew renews the lease when a third of its time has passed and reports
// whether this replica holds it.
func (l *pollLease) renew(ctx context.Context) bool {
	if time.Since(l.renewedAt) <= pollerLeaseTTL/3 {
		return l.held
	}
	ok, err := l.r.st.AcquireLease(ctx, PollerLease, l.holder, pollerLeaseTTL)
	if err != nil && ctx.Err() == nil {
		l.r.log.Warn("acquire source poller lease", "err", err)
	}
	ok = ok && err == nil
	if ok != l.held {
		l.r.log.Info("source poller lease", "held", ok)
	}
	l.held, l.renewedAt = ok, time.Now()
	return ok
}

// pollOnce checks the sources of every pipeline once.
func (r *Runner) pollOnce(ctx context.Context, lease *pollLease) {
	const page = 100
	after := ""
	for ctx.Err() == nil {
		recs, err := r.st.ListPipelines(ctx, after, page)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("source poller: list pipelines", "err", err)
			}
			return
		}
		for _, rec := range recs {
			if !lease.renew(ctx) {
				return // another replica took over
			}
			if err := r.pollPipeline(ctx, rec.Name); err != nil && ctx.Err() == nil {
				r.log.Warn("source poller", "pipeline", rec.Name, "err", err)
			}
		}
		if len(recs) < page {
			return
		}
		after = recs[len(recs)-1].Name
	}
}

// polledSource is a polled source action and the revision its object has now.
type polledSource struct {
	action, bucket, key string
	revision            string
}

// pollPipeline starts an execution of a pipeline when the object of one of
// its polled S3 source actions changed.
func (r *Runner) pollPipeline(ctx context.Context, name string) error {
	decl, _, err := r.pl.Declaration(ctx, name, 0)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted meanwhile
	}
	if err != nil {
		return err
	}
	var sources []polledSource
	for _, src := range polledActions(decl) {
		bucket, err1 := r.pl.OpenSecret(name, src.Configuration["S3Bucket"])
		key, err2 := r.pl.OpenSecret(name, src.Configuration["S3ObjectKey"])
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		if bucket == "" || key == "" || strings.Contains(bucket+key, "#{") {
			continue // resolved only when an execution runs: nothing to poll
		}
		head, err := r.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		r.notePollError(name, src.Name, bucket, key, err)
		if err != nil {
			continue
		}
		sources = append(sources, polledSource{action: src.Name, bucket: bucket, key: key, revision: revisionOf(head.VersionId, head.ETag)})
	}
	if len(sources) == 0 {
		return nil
	}
	xs, seqs, err := r.eng.Executions(ctx, name, 0, 100)
	if err != nil {
		return err
	}
	newest := int64(0)
	if len(seqs) > 0 {
		newest = seqs[0]
	}
	for _, s := range sources {
		seen, pending := lastSeen(xs, s.action)
		if pending || seen == s.revision {
			continue
		}
		// The token makes concurrent pollers (a lease that changed hands
		// mid-poll) start one execution, not two, for the same change.
		sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%s\x00%s\x00%d", name, s.action, s.revision, newest)))
		id, err := r.eng.Start(ctx, engine.StartRequest{
			Pipeline: name, ClientToken: "poll-" + hex.EncodeToString(sum[:16]),
			TriggerType:   string(wire.TriggerTypePollForSourceChanges),
			TriggerDetail: triggerDetail(s),
		})
		if err != nil {
			if e, ok := wire.AsError(err); ok && e.Code == wire.ErrPipelineNotFound {
				return nil
			}
			return fmt.Errorf("start an execution for the change of s3://%s/%s: %w", s.bucket, s.key, err)
		}
		r.log.Info("source changed; started an execution", "pipeline", name, "action", s.action,
			"object", "s3://"+s.bucket+"/"+s.key, "revision", s.revision, "previous", seen, "execution", id)
		return nil // one execution fetches every source's latest revision
	}
	return nil
}

// polledActions are the pipeline's S3 source actions that poll: those
// whose PollForSourceChanges is not "false" (true is CodePipeline's default).
func polledActions(decl *wire.PipelineDeclaration) []*wire.ActionDeclaration {
	if decl == nil || len(decl.Stages) == 0 {
		return nil
	}
	var out []*wire.ActionDeclaration
	for i := range decl.Stages[0].Actions {
		a := &decl.Stages[0].Actions[i]
		if actiontypes.KeyOf(a.ActionTypeId) != SourceKey {
			continue
		}
		if strings.EqualFold(strings.TrimSpace(a.Configuration["PollForSourceChanges"]), "false") {
			continue
		}
		out = append(out, a)
	}
	return out
}

// lastSeen finds the revision of a source action that the pipeline last
// saw, from its executions, newest first: the revision the action recorded
// in the newest execution that ran it; pending when an execution that has
// not yet recorded one is still running (it will read the latest object);
// or, for an execution the poller started that ended without recording
// one, the revision that started it (so that a failing source is not
// started again and again for the same change). Rollbacks and executions
// that ran the action at a sourceRevisions override do not count.
func lastSeen(xs []*engine.Execution, action string) (revision string, pending bool) {
	for _, x := range xs {
		if x.Type == engine.TypeRollback {
			continue
		}
		if _, ok := x.SourceOverrides[action]; ok {
			continue
		}
		if len(x.Stages) > 0 {
			for _, a := range x.Stages[0].Actions {
				if a.Name == action && a.Revision != "" {
					return a.Revision, false
				}
			}
		}
		if x.Active() {
			return "", true
		}
		if x.TriggerType == string(wire.TriggerTypePollForSourceChanges) {
			if a, rev, ok := parseTriggerDetail(x.TriggerDetail); ok && a == action {
				return rev, false
			}
		}
	}
	return "", false
}

// triggerDetail describes a change for the execution it starts:
// "<action>: s3://<bucket>/<key>@<revision>" (revisions hold no '@').
func triggerDetail(s polledSource) string {
	return fmt.Sprintf("%s: s3://%s/%s@%s", s.action, s.bucket, s.key, s.revision)
}

func parseTriggerDetail(d string) (action, revision string, ok bool) {
	action, rest, ok := strings.Cut(d, ": s3://")
	if !ok {
		return "", "", false
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return "", "", false
	}
	return action, rest[at+1:], true
}

// notePollError logs a source that cannot be read when that starts or its
// reason changes (not on every poll), and when it recovers.
func (r *Runner) notePollError(pipeline, action, bucket, key string, err error) {
	id := pipeline + "\x00" + action
	msg := ""
	if err != nil {
		msg = s3Failure(err, "check the source object", bucket, key).message
	}
	r.pollErrMu.Lock()
	prev := r.pollErrs[id]
	if msg == "" {
		delete(r.pollErrs, id)
	} else {
		r.pollErrs[id] = msg
	}
	r.pollErrMu.Unlock()
	switch {
	case msg != "" && msg != prev:
		r.log.Warn("source poller: cannot check a source", "pipeline", pipeline, "action", action, "err", msg)
	case msg == "" && prev != "":
		r.log.Info("source poller: source readable again", "pipeline", pipeline, "action", action)
	}
}
