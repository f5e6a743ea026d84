package runner

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// contractSink keeps a log as the joblogs contract says the server does:
// it appends only at offset == stored length, skips bytes it already has,
// answers the stored length, and refuses a gap with the stored length.
// Every third call fails as a lost request would (after storing, half the
// time: the answer was lost, not the request).
type contractSink struct {
	mu      sync.Mutex
	log     bytes.Buffer
	calls   int
	maxBody int
}

func (s *contractSink) AppendLog(_ context.Context, _, _ string, offset int64, data []byte) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.maxBody = max(s.maxBody, len(data))
	have := int64(s.log.Len())
	if offset > have {
		return have, nil // 409 with the acked length
	}
	if end := offset + int64(len(data)); end > have {
		s.log.Write(data[have-offset:])
	}
	if s.calls%3 == 0 {
		return 0, errors.New("connection reset")
	}
	return int64(s.log.Len()), nil
}

func TestShipperDeliversEverythingOnceThroughErrors(t *testing.T) {
	r := New(nil, Options{Logger: slog.New(slog.DiscardHandler)})
	j := &job{r: r, id: "j", nonce: "n", dir: t.TempDir(), log: r.log}
	sink := &contractSink{}
	s := newShipper(j, sink)
	secret := "super-secret-value"
	out := newOutput(s, []string{secret}, 1<<30)
	var want strings.Builder
	line := strings.Repeat("x", 1000) + " " + secret + "\n"
	for i := range 2000 { // 2 MB in writes cut mid-secret
		piece := line
		if i%2 == 0 {
			_, _ = out.Write([]byte(piece[:1005]))
			_, _ = out.Write([]byte(piece[1005:]))
		} else {
			_, _ = out.Write([]byte(piece))
		}
		want.WriteString(strings.Repeat("x", 1000) + " ***\n")
	}
	out.close()
	s.close()
	if got := sink.log.String(); got != want.String() {
		t.Fatalf("the server holds %d bytes, want %d (equal: %v)", len(got), want.Len(), got == want.String())
	}
	if sink.maxBody > shipChunk {
		t.Errorf("a request carried %d bytes, over %d", sink.maxBody, shipChunk)
	}
}
