package consoleusers

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pipelined/pipelined/internal/store/sqlite"
	"github.com/pipelined/pipelined/internal/wire"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newService(t *testing.T) (*Service, *clock) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &clock{t: time.Now()}
	s, err := New(st, Options{IdleTimeout: time.Hour, MaxAge: 24 * time.Hour, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q is not an argon2id PHC string with the expected parameters", h)
	}
	if strings.Contains(h, "correct horse") {
		t.Error("the hash contains the password")
	}
	for pw, want := range map[string]bool{"correct horse battery": true, "correct horse batterY": false, "": false} {
		ok, err := checkPassword(h, pw)
		if err != nil || ok != want {
			t.Errorf("checkPassword(%q) = %v, %v; want %v", pw, ok, err, want)
		}
	}
	h2, _ := HashPassword("correct horse battery")
	if h2 == h {
		t.Error("two hashes of one password are equal: no salt")
	}
	// A stored hash asking for more than a sign-in may spend is refused.
	for _, bad := range []string{
		"$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$" + strings.Repeat("A", 43),
		"$argon2id$v=19$m=19456,t=99,p=1$c2FsdHNhbHQ$" + strings.Repeat("A", 43),
		"$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$" + strings.Repeat("A", 43),
		"plain",
	} {
		if _, err := checkPassword(bad, "x"); err == nil {
			t.Errorf("checkPassword accepted the hash %q", bad)
		}
	}
}

func FuzzParsePHC(f *testing.F) {
	h, _ := HashPassword("seed password 1")
	f.Add(h)
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$$")
	f.Add("$argon2id$v=19$m=0,t=0,p=0$QQ$QQ")
	f.Add("$$$$$")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePHC(s)
		if err != nil {
			return
		}
		if p.memory > maxArgonMemoryKiB || p.time > maxArgonTime || p.threads == 0 || len(p.key) < 16 || len(p.salt) < 8 {
			t.Fatalf("parsePHC(%q) accepted out-of-bounds parameters %+v", s, p)
		}
	})
}

func TestCreateValidates(t *testing.T) {
	s, _ := newService(t)
	ctx := t.Context()
	_, err := s.Create(ctx, "bad name!", "chief", "short")
	e, ok := wire.AsError(err)
	if !ok || e.Code != wire.ErrValidation {
		t.Fatalf("Create with bad input = %v, want a ValidationException", err)
	}
	for _, want := range []string{"'name'", "'role'", "'password'"} {
		if !strings.Contains(e.Message, want) {
			t.Errorf("message %q does not name %s", e.Message, want)
		}
	}
	if strings.Contains(e.Message, "short") {
		t.Errorf("message %q echoes the password", e.Message)
	}
	if _, err := s.Create(ctx, "ann", Approver, "a long enough password"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Create(ctx, "ann", Viewer, "a long enough password")
	if e, ok := wire.AsError(err); !ok || e.Code != ErrUserExists {
		t.Errorf("second Create = %v, want %s", err, ErrUserExists)
	}
}

func TestSignInAndSessions(t *testing.T) {
	s, c := newService(t)
	ctx := t.Context()
	if _, err := s.Create(ctx, "ann", Approver, "a long enough password"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SignIn(ctx, "ann", "wrong password!!", "10.0.0.1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := s.SignIn(ctx, "nobody", "a long enough password", "10.0.0.1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("unknown user: %v (must look like a wrong password)", err)
	}
	sess, err := s.SignIn(ctx, "ann", "a long enough password", "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if sess.Role != Approver || len(sess.ID) < 40 || sess.CSRF == "" {
		t.Fatalf("session = %+v", sess)
	}
	got, err := s.Resolve(ctx, sess.ID)
	if err != nil || got.User.Name != "ann" || !got.CheckCSRF(sess.CSRF) || got.CheckCSRF(sess.CSRF+"x") || got.CheckCSRF("") {
		t.Fatalf("Resolve = %+v, %v", got, err)
	}
	if _, err := s.Resolve(ctx, sess.ID+"x"); !errors.Is(err, ErrNoSession) {
		t.Errorf("a forged id resolved: %v", err)
	}
	// Activity keeps it alive past the idle timeout; idleness ends it.
	c.add(50 * time.Minute)
	if _, err := s.Resolve(ctx, sess.ID); err != nil {
		t.Fatalf("after 50 minutes: %v", err)
	}
	// The store's LastSeen is its own clock (real time), so idleness is
	// judged against it: move the service clock well past it.
	c.add(2 * time.Hour)
	if _, err := s.Resolve(ctx, sess.ID); !errors.Is(err, ErrNoSession) {
		t.Errorf("an idle session resolved: %v", err)
	}
	// Disabling signs out.
	c.t = time.Now()
	sess, err = s.SignIn(ctx, "ann", "a long enough password", "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	if _, err := s.Update(ctx, "ann", Change{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(ctx, sess.ID); !errors.Is(err, ErrNoSession) {
		t.Errorf("a disabled user's session resolved: %v", err)
	}
	if _, err := s.SignIn(ctx, "ann", "a long enough password", "10.0.0.1"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("a disabled user signed in: %v", err)
	}
	// Sign-out.
	no := false
	if _, err := s.Update(ctx, "ann", Change{Disabled: &no}); err != nil {
		t.Fatal(err)
	}
	sess, err = s.SignIn(ctx, "ann", "a long enough password", "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SignOut(ctx, sess.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(ctx, sess.ID); !errors.Is(err, ErrNoSession) {
		t.Errorf("a signed-out session resolved: %v", err)
	}
}

func TestSessionMaxAge(t *testing.T) {
	s, c := newService(t)
	ctx := context.Background()
	if _, err := s.Create(ctx, "bob", Viewer, "a long enough password"); err != nil {
		t.Fatal(err)
	}
	sess, err := s.SignIn(ctx, "bob", "a long enough password", "a")
	if err != nil {
		t.Fatal(err)
	}
	c.add(25 * time.Hour)
	if _, err := s.Resolve(ctx, sess.ID); !errors.Is(err, ErrNoSession) {
		t.Errorf("a session past its maximum age resolved: %v", err)
	}
}

func TestSignInRateLimit(t *testing.T) {
	s, c := newService(t)
	ctx := t.Context()
	if _, err := s.Create(ctx, "carol", Operator, "a long enough password"); err != nil {
		t.Fatal(err)
	}
	for i := range maxUserFailures {
		if _, err := s.SignIn(ctx, "carol", "wrong password!!", "10.0.0.2"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	// Now even the right password is refused without being checked.
	_, err := s.SignIn(ctx, "carol", "a long enough password", "10.0.0.3")
	var rl *RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter <= 0 || rl.RetryAfter > failureWindow {
		t.Fatalf("sign-in after %d failures = %v, want rate limited", maxUserFailures, err)
	}
	c.add(failureWindow + time.Second)
	if _, err := s.SignIn(ctx, "carol", "a long enough password", "10.0.0.3"); err != nil {
		t.Errorf("sign-in after the window: %v", err)
	}
	// Per address: many names from one address.
	for i := range maxAddrFailures {
		_, _ = s.SignIn(ctx, "user"+string(rune('a'+i)), "wrong password!!", "10.9.9.9")
	}
	if _, err := s.SignIn(ctx, "carol", "a long enough password", "10.9.9.9"); !errors.As(err, &rl) {
		t.Errorf("sign-in from an address that failed %d times = %v, want rate limited", maxAddrFailures, err)
	}
}

func TestRoles(t *testing.T) {
	if !Admin.Allows(Operator) || !Operator.Allows(Approver) || Approver.Allows(Operator) || Viewer.Allows(Approver) || Role("chief").Allows(Viewer) {
		t.Error("role order is wrong")
	}
}
