package consoleusers

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"time"

	"github.com/pipelined/pipelined/internal/store"
)

// Sign-in and session errors. The console answers ErrBadCredentials the
// same way whether the name is unknown, the password wrong or the user
// disabled, so that sign-in does not tell which names exist.
var (
	ErrBadCredentials = errors.New("the user name or password is wrong")
	ErrNoSession      = errors.New("not signed in, or the session has ended")
)

// RateLimitedError says a sign-in was refused without checking the
// password, because of too many recent failures.
type RateLimitedError struct{ RetryAfter time.Duration }

func (e *RateLimitedError) Error() string {
	return "too many failed sign-ins: try again in " + e.RetryAfter.Round(time.Second).String()
}

// Session is a signed-in user as the console sees it.
type Session struct {
	// ID is the cookie's value: shown to the browser once, at sign-in,
	// and stored only as a hash.
	ID   string
	User store.ConsoleUser
	Role Role
	// CSRF is the anti-forgery token of the session's forms.
	CSRF string
}

// touchEvery bounds how often a session's LastSeen is written: often
// enough for the idle timeout, rarely enough that reading pages does not
// write the database on every request.
const touchEvery = time.Minute

func hashID(id string) []byte {
	h := sha256.Sum256([]byte(id))
	return h[:]
}

// csrfToken derives a session's anti-forgery token from its id: the
// browser cannot compute it without the cookie's value, which scripts on
// other origins cannot read, and the server needs to store nothing.
func csrfToken(id string) string {
	m := hmac.New(sha256.New, []byte(id))
	m.Write([]byte("pipelined console csrf v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CheckCSRF reports whether token is the session's, in constant time.
func (s Session) CheckCSRF(token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.CSRF)) == 1
}

// SignIn checks a user's password and opens a session. remote is the
// client's address, for the rate limit.
func (s *Service) SignIn(ctx context.Context, name, password, remote string) (Session, error) {
	if wait := s.limiter.blocked(name, remote); wait > 0 {
		s.log.Warn("console sign-in refused: rate limited", "user", name, "remote_addr", remote)
		return Session{}, &RateLimitedError{RetryAfter: wait}
	}
	if len(password) > MaxPasswordLength {
		password = password[:MaxPasswordLength] // never hash an unbounded input; it cannot match anyway
	}
	u, err := s.st.GetConsoleUser(ctx, name)
	hash := u.PasswordHash
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			return Session{}, err
		}
		hash = s.dummyHash
	}
	ok, herr := checkPassword(hash, password)
	if err != nil || herr != nil || !ok || u.Disabled || !Role(u.Role).Valid() {
		s.limiter.fail(name, remote)
		s.log.Info("console sign-in failed", "user", name, "remote_addr", remote)
		return Session{}, ErrBadCredentials
	}
	s.limiter.succeed(name)
	idBytes := make([]byte, 32)
	if _, err := rand.Read(idBytes); err != nil {
		return Session{}, err
	}
	id := base64.RawURLEncoding.EncodeToString(idBytes)
	if _, err := s.st.CreateConsoleSession(ctx, store.ConsoleSession{IDHash: hashID(id), User: u.Name, Expires: s.now().Add(s.maxAge)}); err != nil {
		return Session{}, err
	}
	s.log.Info("console sign-in", "user", u.Name, "role", u.Role, "remote_addr", remote)
	return Session{ID: id, User: u, Role: Role(u.Role), CSRF: csrfToken(id)}, nil
}

// Resolve finds the session of a cookie's value: ErrNoSession when there
// is none, it has expired or idled out, or its user is disabled.
func (s *Service) Resolve(ctx context.Context, id string) (Session, error) {
	if id == "" || len(id) > 128 {
		return Session{}, ErrNoSession
	}
	h := hashID(id)
	cs, err := s.st.GetConsoleSession(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return Session{}, ErrNoSession
	}
	if err != nil {
		return Session{}, err
	}
	now := s.now()
	if now.After(cs.Expires) || now.Sub(cs.LastSeen) > s.idle {
		_ = s.st.DeleteConsoleSession(ctx, h)
		return Session{}, ErrNoSession
	}
	u, err := s.st.GetConsoleUser(ctx, cs.User)
	if errors.Is(err, store.ErrNotFound) {
		return Session{}, ErrNoSession
	}
	if err != nil {
		return Session{}, err
	}
	if u.Disabled || !Role(u.Role).Valid() {
		return Session{}, ErrNoSession
	}
	if now.Sub(cs.LastSeen) > touchEvery {
		if err := s.st.TouchConsoleSession(ctx, h); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("console session: cannot record activity", "user", u.Name, "err", err)
		}
	}
	return Session{ID: id, User: u, Role: Role(u.Role), CSRF: csrfToken(id)}, nil
}

// SignOut ends a session.
func (s *Service) SignOut(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	return s.st.DeleteConsoleSession(ctx, hashID(id))
}

// SweepSessions deletes expired and idle sessions (run periodically; the
// deletes are idempotent, so every replica may run it).
func (s *Service) SweepSessions(ctx context.Context) (int, error) {
	now := s.now()
	return s.st.DeleteStaleConsoleSessions(ctx, now, now.Add(-s.idle))
}
