// Package consoleusers is who may use the web console: users with a role
// and an Argon2id password hash, sign-in with a rate limit, and sessions
// kept in the store (so they survive a restart and work on every replica)
// under a hash of their id.
//
// Roles are ordered; each allows what the ones below it allow:
//
//	viewer    sees pipelines, executions, logs and approvals
//	approver  also decides manual approvals
//	operator  also starts, stops, retries and rolls back executions and
//	          enables and disables transitions
//	admin     also sees the settings pages (users, worker keys, clients,
//	          the OIDC issuer)
//
// Users are managed by the operator with `pipelined admin` (the admin API),
// not in the console's own forms, so that a stolen console session cannot
// create a user.
package consoleusers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// Role is what a console user may do.
type Role string

// The roles, from least to most.
const (
	Viewer   Role = "viewer"
	Approver Role = "approver"
	Operator Role = "operator"
	Admin    Role = "admin"
)

var roleRank = map[Role]int{Viewer: 1, Approver: 2, Operator: 3, Admin: 4}

// Roles lists the roles from least to most.
func Roles() []Role { return []Role{Viewer, Approver, Operator, Admin} }

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return roleRank[r] > 0 }

// Allows reports whether a user of role r may do what needs role need.
func (r Role) Allows(need Role) bool { return r.Valid() && roleRank[r] >= roleRank[need] }

// Limits of names and passwords.
const (
	MinPasswordLength = 12
	MaxPasswordLength = 256 // bytes: Argon2 hashes any length, the request body need not carry more
)

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$`)

// ARN is the principal a console user acts as in the API's records
// (lastUpdatedBy, who approved, triggerDetail): an IAM-user-shaped ARN
// under the path /console/, so it cannot be mistaken for the root's.
func ARN(accountID, name string) string {
	return fmt.Sprintf("arn:aws:iam::%s:user/console/%s", accountID, name)
}

// Options configure a Service.
type Options struct {
	// IdleTimeout ends a session not used for this long (default 8h).
	IdleTimeout time.Duration
	// MaxAge ends a session this long after sign-in, used or not
	// (default 7 days).
	MaxAge time.Duration
	Logger *slog.Logger
	// Now is the clock (tests).
	Now func() time.Time
}

// Service manages console users and sessions.
type Service struct {
	st      store.Store
	idle    time.Duration
	maxAge  time.Duration
	log     *slog.Logger
	now     func() time.Time
	limiter *limiter
	// dummyHash is checked against when the user does not exist, so that
	// a sign-in takes as long whether or not the name is known.
	dummyHash string
}

// New returns a Service on st.
func New(st store.Store, o Options) (*Service, error) {
	s := &Service{st: st, idle: o.IdleTimeout, maxAge: o.MaxAge, log: o.Logger, now: o.Now}
	if s.idle <= 0 {
		s.idle = 8 * time.Hour
	}
	if s.maxAge <= 0 {
		s.maxAge = 7 * 24 * time.Hour
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.limiter = newLimiter(s.now)
	var err error
	if s.dummyHash, err = HashPassword("not a password anyone has"); err != nil {
		return nil, err
	}
	return s, nil
}

// IdleTimeout and MaxAge are the session lifetimes in force.
func (s *Service) IdleTimeout() time.Duration { return s.idle }
func (s *Service) MaxAge() time.Duration      { return s.maxAge }

func validateName(v *wire.Validator, name string) {
	if !namePattern.MatchString(name) {
		v.Add("name", name, "Member must be 1 to 64 letters, digits and ._@+- starting with a letter or digit")
	}
}

func validatePassword(v *wire.Validator, field, password string) {
	v.Length(field, true, password, MinPasswordLength, MaxPasswordLength)
}

func validateRole(v *wire.Validator, role Role) {
	if !role.Valid() {
		v.Enum("role", string(role), []string{string(Viewer), string(Approver), string(Operator), string(Admin)})
	}
}

// Create adds a user. ErrAlreadyExists (as a wire error) when the name is
// taken.
func (s *Service) Create(ctx context.Context, name string, role Role, password string) (store.ConsoleUser, error) {
	var v wire.Validator
	validateName(&v, name)
	validateRole(&v, role)
	validatePassword(&v, "password", password)
	if err := v.Err(); err != nil {
		return store.ConsoleUser{}, err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return store.ConsoleUser{}, err
	}
	u, err := s.st.CreateConsoleUser(ctx, store.ConsoleUser{Name: name, Role: string(role), PasswordHash: hash})
	if errors.Is(err, store.ErrAlreadyExists) {
		return store.ConsoleUser{}, wire.Errorf(ErrUserExists, "Console user %s already exists", name)
	}
	if err != nil {
		return store.ConsoleUser{}, err
	}
	s.log.Info("console user created", "user", name, "role", role)
	return u, nil
}

// Error codes of console user operations (the admin API's vocabulary).
const (
	ErrUserExists   = "ConsoleUserAlreadyExistsException"
	ErrUserNotFound = "ConsoleUserNotFoundException"
)

// Get reads a user.
func (s *Service) Get(ctx context.Context, name string) (store.ConsoleUser, error) {
	u, err := s.st.GetConsoleUser(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return u, wire.Errorf(ErrUserNotFound, "There is no console user %s", name)
	}
	return u, err
}

// List lists the users.
func (s *Service) List(ctx context.Context) ([]store.ConsoleUser, error) {
	return s.st.ListConsoleUsers(ctx)
}

// Change is an update of a user; nil fields stay as they are.
type Change struct {
	Role     *Role
	Disabled *bool
	Password *string
}

// Update changes a user's role, disabled flag or password. Disabling or a
// new password signs the user out everywhere (the store deletes the
// sessions in the same transaction).
func (s *Service) Update(ctx context.Context, name string, c Change) (store.ConsoleUser, error) {
	var v wire.Validator
	if c.Role != nil {
		validateRole(&v, *c.Role)
	}
	var hash string
	if c.Password != nil {
		validatePassword(&v, "password", *c.Password)
	}
	if err := v.Err(); err != nil {
		return store.ConsoleUser{}, err
	}
	if c.Password != nil {
		var err error
		if hash, err = HashPassword(*c.Password); err != nil {
			return store.ConsoleUser{}, err
		}
	}
	u, err := s.st.UpdateConsoleUser(ctx, name, func(u *store.ConsoleUser) error {
		if c.Role != nil {
			u.Role = string(*c.Role)
		}
		if c.Disabled != nil {
			u.Disabled = *c.Disabled
		}
		if c.Password != nil {
			u.PasswordHash = hash
		}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return u, wire.Errorf(ErrUserNotFound, "There is no console user %s", name)
	}
	if err != nil {
		return u, err
	}
	s.log.Info("console user updated", "user", name, "role", u.Role, "disabled", u.Disabled, "password_reset", c.Password != nil)
	return u, nil
}
