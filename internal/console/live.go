package console

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// hub fans the engine's change notices out to the open pipeline pages of
// this replica. A subscriber's channel holds one pending notice: notices
// arriving while one is pending coalesce, so a busy pipeline costs a page
// one re-render per round, never a queue.
type hub struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

func newHub() *hub { return &hub{subs: map[string]map[chan struct{}]struct{}{}} }

func (h *hub) subscribe(pipeline string) chan struct{} {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs[pipeline] == nil {
		h.subs[pipeline] = map[chan struct{}]struct{}{}
	}
	h.subs[pipeline][ch] = struct{}{}
	return ch
}

func (h *hub) unsubscribe(pipeline string, ch chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs[pipeline], ch)
	if len(h.subs[pipeline]) == 0 {
		delete(h.subs, pipeline)
	}
}

// notify never blocks: it runs on the engine's transition path.
func (h *hub) notify(pipeline string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[pipeline] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Live stream timing.
const (
	livePing = 30 * time.Second
	// liveMaxAge ends a stream after this long; the browser's EventSource
	// reconnects at once, and the session is checked again then.
	liveMaxAge   = time.Hour
	liveWriteMax = 10 * time.Second
)

// pipelineLive streams the pipeline page's live part as server-sent events:
// an "update" event with the re-rendered HTML whenever it changes. The
// event id is a hash of that HTML, so a reconnecting page (Last-Event-ID)
// is sent nothing until something really changed. One goroutine per
// connection (the handler's own); the engine's notices wake it, and it
// also re-reads every LiveRecheck for changes made on other replicas.
func (h *Handler) pipelineLive(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	rc := http.NewResponseController(w)
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	sub := h.hub.subscribe(name)
	defer h.hub.unsubscribe(name, sub)

	last := r.Header.Get("Last-Event-ID")
	recheck := time.NewTicker(h.cfg.LiveRecheck)
	defer recheck.Stop()
	ping := time.NewTicker(livePing)
	defer ping.Stop()
	end := time.NewTimer(liveMaxAge)
	defer end.Stop()
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(liveWriteMax))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	// The first write also tells the browser the stream is open.
	if !write([]byte("retry: 2000\n\n")) {
		return
	}
	send := func() bool {
		v, err := h.pipelineView(r, name)
		if err != nil {
			return write([]byte("event: gone\ndata: " + sseLine(h.apiError(err)) + "\n\n"))
		}
		html, err := h.renderPartial("pipeline", "live", r, v)
		if err != nil {
			h.log.Error("console: rendering a live update failed", "pipeline", name, "err", err)
			return false
		}
		sum := sha256.Sum256(html)
		id := hex.EncodeToString(sum[:12])
		if id == last {
			return true
		}
		last = id
		var b bytes.Buffer
		fmt.Fprintf(&b, "id: %s\nevent: update\n", id)
		for line := range bytes.Lines(html) {
			b.WriteString("data: ")
			b.Write(bytes.TrimRight(line, "\r\n"))
			b.WriteByte('\n')
		}
		b.WriteByte('\n')
		return write(b.Bytes())
	}
	if !send() {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-end.C:
			return
		case <-sub:
		case <-recheck.C:
		case <-ping.C:
			if !write([]byte(": ping\n\n")) {
				return
			}
			continue
		}
		if !send() {
			return
		}
	}
}

// sseLine keeps a message on one data line.
func sseLine(s string) string {
	return string(bytes.ReplaceAll(bytes.ReplaceAll([]byte(s), []byte("\r"), nil), []byte("\n"), []byte(" ")))
}
