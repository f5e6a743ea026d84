package s3api

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Abandoned multipart uploads.
//
// A worker that dies between CreateMultipartUpload and Complete (or Abort)
// leaves its parts under uploads/<id>/ for ever; SweepUploads removes the
// uploads initiated before a cutoff, and RunUploadSweeper does so
// periodically.
//
// Sweeping must not race with the upload's own operations. Each upload has
// an in-process lock (uploadLocks) that every operation changing it holds:
// UploadPart and UploadPartCopy while they move their part in (putPart;
// not while the body streams or the source is copied, so parts still
// upload in parallel), CompleteMultipartUpload from the moment
// it re-reads the upload until the object is committed and the upload
// removed, AbortMultipartUpload, and the sweeper. The sweeper only
// try-locks: an upload someone is working on right now is not abandoned,
// so it is skipped (a later sweep, or the Complete itself, removes it).
// So a Complete either runs entirely before the sweep (the object is
// committed whole; the sweep then finds nothing) or entirely after it (it
// re-reads the upload under the lock, finds none, and answers
// NoSuchUpload); it never reads parts being deleted.
//
// Removal itself is a rename of the upload's directory into tmp/, then a
// recursive delete there (removeUpload): the upload disappears at once and
// whole, so the operations that take no lock (ListParts,
// ListMultipartUploads) see all of it or none, and a crash in the middle of
// the delete leaves nothing under uploads/ (tmp/ is emptied at start).
//
// The locks are per process: like the store's commit lock and its start-up
// cleanup of tmp/, they assume one process owns the directory.

// uploadLocks hands out one mutex per upload id, created on first use and
// dropped when nobody holds or waits for it.
type uploadLocks struct {
	mu sync.Mutex
	m  map[string]*uploadLock
}

type uploadLock struct {
	sync.Mutex
	refs int // holders and waiters
}

func (l *uploadLocks) acquire(id string) *uploadLock {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]*uploadLock{}
	}
	lk := l.m[id]
	if lk == nil {
		lk = &uploadLock{}
		l.m[id] = lk
	}
	lk.refs++
	return lk
}

func (l *uploadLocks) release(id string, lk *uploadLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lk.refs--
	if lk.refs == 0 {
		delete(l.m, id)
	}
}

// lock blocks until it holds the upload's lock, and returns its unlock.
func (l *uploadLocks) lock(id string) (unlock func()) {
	lk := l.acquire(id)
	lk.Lock()
	return func() { lk.Unlock(); l.release(id, lk) }
}

// tryLock takes the upload's lock if nobody holds it.
func (l *uploadLocks) tryLock(id string) (unlock func(), ok bool) {
	lk := l.acquire(id)
	if !lk.TryLock() {
		l.release(id, lk)
		return nil, false
	}
	return func() { lk.Unlock(); l.release(id, lk) }, true
}

// removeUpload deletes an upload's directory, renaming it into tmp/ first
// (see above). Call it holding the upload's lock. It returns
// fs.ErrNotExist if the upload is already gone; once the rename is done the
// upload is gone, and a failure to delete the renamed files is only logged
// (the next start empties tmp/).
func (h *Handler) removeUpload(id string) error {
	trash := filepath.Join(h.st.root, "tmp", "upload-"+id+"-"+randHex(4))
	if err := os.Rename(h.uploadDir(id), trash); err != nil {
		return err
	}
	if err := os.RemoveAll(trash); err != nil {
		h.log.Warn("s3: removing a multipart upload's files", "upload_id", id, "err", err)
	}
	return nil
}

// SweepUploads removes the multipart uploads initiated before olderThan,
// parts and all, and the upload directories without a readable upload.json
// (leftovers of a crash during CreateMultipartUpload) last modified before
// olderThan. Uploads in use by a request at that moment are skipped. A
// CompleteMultipartUpload or UploadPart of a removed upload then answers
// NoSuchUpload. It returns how many it removed, and the errors met on the
// way (it goes on past them).
func (h *Handler) SweepUploads(olderThan time.Time) (removed int, err error) {
	ents, err := os.ReadDir(filepath.Join(h.st.root, "uploads"))
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, e := range ents {
		// Only what CreateMultipartUpload makes: never anything else
		// someone put there.
		if !e.IsDir() || !uploadIDRE.MatchString(e.Name()) {
			continue
		}
		ok, err := h.sweepUpload(e.Name(), olderThan)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			removed++
		}
	}
	return removed, errors.Join(errs...)
}

// sweepUpload removes one upload if it is older than olderThan and nobody
// is using it.
func (h *Handler) sweepUpload(id string, olderThan time.Time) (bool, error) {
	unlock, ok := h.uploads.tryLock(id)
	if !ok {
		return false, nil
	}
	defer unlock()
	if !h.uploadBefore(id, olderThan) {
		return false, nil
	}
	err := h.removeUpload(id)
	if errors.Is(err, fs.ErrNotExist) { // completed or aborted meanwhile
		return false, nil
	}
	return err == nil, err
}

// uploadBefore tells whether an upload was initiated before t; for a
// directory without a readable upload.json, whether it was last modified
// before t.
func (h *Handler) uploadBefore(id string, t time.Time) bool {
	if u, err := h.readUploadMeta(id); err == nil {
		return u.Initiated.Before(t)
	}
	fi, err := os.Stat(h.uploadDir(id))
	return err == nil && fi.ModTime().Before(t)
}

// RunUploadSweeper removes the multipart uploads initiated more than
// maxAge ago: once at once, then every every, until ctx is done. It logs
// how many it removed through the handler's logger. Both durations must be
// positive; otherwise it logs an error and returns without sweeping.
func (h *Handler) RunUploadSweeper(ctx context.Context, maxAge, every time.Duration) {
	if maxAge <= 0 || every <= 0 {
		h.log.Error("s3 upload sweeper not started: max age and interval must be positive", "max_age", maxAge, "every", every)
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for ctx.Err() == nil {
		h.sweepOnce(maxAge)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}

func (h *Handler) sweepOnce(maxAge time.Duration) {
	n, err := h.SweepUploads(time.Now().Add(-maxAge))
	if err != nil {
		h.log.Error("s3 upload sweep", "removed", n, "err", err)
		return
	}
	if n > 0 {
		h.log.Info("s3 upload sweep: removed abandoned multipart uploads", "removed", n, "max_age", maxAge)
		return
	}
	h.log.Debug("s3 upload sweep: nothing to remove", "max_age", maxAge)
}
