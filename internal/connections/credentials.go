package connections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"golang.org/x/crypto/ssh"

	cc "github.com/pipelined/pipelined/internal/connwire/codeconnections"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// Credential kinds.
const (
	KindToken = "token" // an access token, sent as the password of HTTP basic auth
	KindBasic = "basic" // a user name and password (HTTP basic auth)
	KindSSH   = "ssh"   // an SSH private key, with the server's known-hosts entry
	KindNone  = "none"  // public repositories
)

// maxSecret bounds each secret field (an SSH key is a few KiB).
const maxSecret = 16 << 10

// Credentials are what a connection authenticates to its Git server with.
// They are sealed as JSON; no method returns them but Resolve.
type Credentials struct {
	Kind     string `json:"kind"`
	Token    string `json:"token,omitempty"`
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// SSHPrivateKey is a PEM/OpenSSH private key (unencrypted);
	// KnownHosts is the server's line(s) in known_hosts format.
	SSHPrivateKey string `json:"sshPrivateKey,omitempty"`
	KnownHosts    string `json:"knownHosts,omitempty"`
}

// Check validates credentials, naming the field at fault (never its value).
func (c Credentials) Check() error {
	bad := func(format string, args ...any) error { return wire.Errorf(wire.ErrValidation, format, args...) }
	for name, v := range map[string]string{"token": c.Token, "username": c.Username, "password": c.Password, "sshPrivateKey": c.SSHPrivateKey, "knownHosts": c.KnownHosts} {
		if len(v) > maxSecret {
			return bad("%s is longer than %d bytes", name, maxSecret)
		}
	}
	only := func(allowed ...string) error {
		set := map[string]string{"token": c.Token, "username": c.Username, "password": c.Password, "sshPrivateKey": c.SSHPrivateKey, "knownHosts": c.KnownHosts}
		for _, a := range allowed {
			delete(set, a)
		}
		for name, v := range set {
			if v != "" {
				return bad("%s does not go with credentials of kind %s", name, c.Kind)
			}
		}
		return nil
	}
	switch c.Kind {
	case KindToken:
		if strings.TrimSpace(c.Token) == "" {
			return bad("token is required for credentials of kind token")
		}
		if strings.ContainsAny(c.Token, "\r\n") {
			return bad("token may not contain line breaks")
		}
		return only("token", "username")
	case KindBasic:
		if c.Username == "" || c.Password == "" {
			return bad("username and password are required for credentials of kind basic")
		}
		return only("username", "password")
	case KindSSH:
		if _, err := ssh.ParsePrivateKey([]byte(c.SSHPrivateKey)); err != nil {
			var missing *ssh.PassphraseMissingError
			if errors.As(err, &missing) {
				return bad("sshPrivateKey is encrypted: give an unencrypted key (it is sealed under the master key)")
			}
			return bad("sshPrivateKey is not a private key pipelined can read (PEM or OpenSSH format)")
		}
		if err := checkKnownHosts(c.KnownHosts); err != nil {
			return err
		}
		return only("sshPrivateKey", "knownHosts", "username")
	case KindNone:
		return only()
	}
	return bad("kind '%s' is not one of token, basic, ssh, none", c.Kind)
}

func checkKnownHosts(kh string) error {
	if strings.TrimSpace(kh) == "" {
		return wire.Errorf(wire.ErrValidation, "knownHosts is required with an SSH key: the server's host key line (ssh-keyscan HOST), so that it is pinned")
	}
	rest := []byte(kh)
	n := 0
	for len(rest) > 0 {
		_, _, _, _, r, err := ssh.ParseKnownHosts(rest)
		if err != nil {
			if n > 0 && strings.TrimSpace(string(rest)) == "" {
				break
			}
			return wire.Errorf(wire.ErrValidation, "knownHosts is not in known_hosts format (host key-type base64-key)")
		}
		n++
		rest = r
	}
	if n == 0 {
		return wire.Errorf(wire.ErrValidation, "knownHosts holds no host key")
	}
	return nil
}

// sealContext binds sealed credentials to their connection: a sealed value
// copied to another row does not open.
func sealContext(id string) string { return "gitconnection/" + id + "/credentials" }

// SetCredentials seals and stores a connection's credentials and makes it
// AVAILABLE. The ARN may be of either service.
func (s *Service) SetCredentials(ctx context.Context, arn string, c Credentials) (cc.Connection, error) {
	_, id, err := s.parseARN(arn, kindConnection, "connectionArn")
	if err != nil {
		return cc.Connection{}, err
	}
	if err := c.Check(); err != nil {
		return cc.Connection{}, err
	}
	plain, err := json.Marshal(c)
	if err != nil {
		return cc.Connection{}, err
	}
	sealed := s.sealer.Seal(string(plain), sealContext(id))
	got, err := s.store.UpdateGitConnection(ctx, id, func(cur store.GitConnection) (store.GitConnection, error) {
		cur.SealedCredentials = sealed
		cur.Status = StatusAvailable
		return cur, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return cc.Connection{}, notFound(kindConnection, arn)
	}
	if err != nil {
		return cc.Connection{}, err
	}
	s.log.Info("connection credentials set", "connection", arn, "kind", c.Kind)
	service := ServiceCodeConnections
	if strings.Contains(arn, ":"+ServiceCodeStar+":") {
		service = ServiceCodeStar
	}
	return s.View(service).connection(got), nil
}

// Resolved is what the Git source action needs of a connection.
type Resolved struct {
	ConnectionID  string
	ConnectionArn string // as the pipeline names it
	ProviderType  string
	Endpoint      string // base URL: repositories are <Endpoint>/<FullRepositoryId>.git
	Credentials   Credentials
}

// RepositoryURL is the URL of a repository of the connection.
func (r Resolved) RepositoryURL(fullRepositoryID string) string {
	return r.Endpoint + "/" + strings.Trim(fullRepositoryID, "/") + ".git"
}

// ErrNotAvailable is wrapped by Resolve's error for a connection without
// credentials (PENDING) or in ERROR.
var ErrNotAvailable = errors.New("connection not available")

// Resolve returns a connection's endpoint and opened credentials for a
// pipeline's ConnectionArn (either service's). Its errors name the
// connection, never a credential.
func (s *Service) Resolve(ctx context.Context, arn string) (Resolved, error) {
	_, id, err := s.parseARN(arn, kindConnection, "ConnectionArn")
	if err != nil {
		return Resolved{}, err
	}
	c, err := s.store.GetGitConnection(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Resolved{}, fmt.Errorf("connection %s does not exist: %w", arn, store.ErrNotFound)
	}
	if err != nil {
		return Resolved{}, err
	}
	if c.Status != StatusAvailable || c.SealedCredentials == "" {
		return Resolved{}, fmt.Errorf("connection %s is %s, not AVAILABLE: set its credentials with pipelined admin set-connection-credentials: %w", arn, c.Status, ErrNotAvailable)
	}
	plain, err := s.sealer.Open(c.SealedCredentials, sealContext(id))
	if err != nil {
		return Resolved{}, fmt.Errorf("connection %s: cannot open its credentials (was the master key changed?)", arn)
	}
	var creds Credentials
	if err := json.Unmarshal([]byte(plain), &creds); err != nil {
		return Resolved{}, fmt.Errorf("connection %s: its stored credentials are unreadable", arn)
	}
	r := Resolved{ConnectionID: id, ConnectionArn: arn, ProviderType: c.ProviderType, Credentials: creds}
	if c.HostID != "" {
		h, err := s.store.GetGitHost(ctx, c.HostID)
		if err != nil {
			return Resolved{}, fmt.Errorf("connection %s: host %s: %w", arn, c.HostID, err)
		}
		r.Endpoint = h.Endpoint
	} else {
		ep, ok := cloudProviders[cc.ProviderType(c.ProviderType)]
		if !ok {
			return Resolved{}, fmt.Errorf("connection %s: provider %s has no known endpoint", arn, c.ProviderType)
		}
		r.Endpoint = ep
	}
	return r, nil
}

// RedactURL drops any user information from a URL for messages.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	u.User = nil
	return u.String()
}
