// Package gitsource keeps bare mirrors of the Git repositories that
// Source/AWS/CodeStarSourceConnection/1 actions read, on the server's disk,
// with go-git (never the git binary), and zips a commit's tree into an
// output artifact.
//
// A mirror lives at <dir>/<sha256(connection id, repository URL)>.git: never
// a name derived from a URL, which may hold credentials or path tricks. A
// new mirror is built in a staging directory and renamed into place, so a
// crash leaves no half-made mirror. One writer per mirror at a time (a lock
// per mirror in this process; only one replica runs a given job). Fetches
// ask only for the watched branch and send what the mirror has, so their
// cost follows what is new. Full history is kept (go-git's shallow
// re-fetches fail with "object not found"). The cache is bounded: after a
// fetch, the least recently used mirrors are removed while the total
// exceeds MaxBytes.
package gitsource

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"

	"github.com/pipelined/pipelined/internal/connections"
)

// DefaultMaxBytes bounds the mirror cache when Cache.MaxBytes is zero.
const DefaultMaxBytes = 10 << 30

// Cache is the mirror cache.
type Cache struct {
	Dir      string
	MaxBytes int64 // 0: DefaultMaxBytes
	Log      *slog.Logger

	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

// Repo identifies a repository: the connection it is read through and its
// full id (owner/name).
type Repo struct {
	Conn             connections.Resolved
	FullRepositoryID string
}

// URL is where the repository is fetched from.
func (r Repo) URL() string { return r.Conn.RepositoryURL(r.FullRepositoryID) }

func (r Repo) describe() string {
	return fmt.Sprintf("repository %s of connection %s", r.FullRepositoryID, r.Conn.ConnectionArn)
}

// path is the mirror's directory: a hash, never the URL.
func (c *Cache) path(r Repo) string {
	h := sha256.Sum256([]byte(r.Conn.ConnectionID + "\x00" + r.URL()))
	return filepath.Join(c.Dir, hex.EncodeToString(h[:])+".git")
}

func (c *Cache) lock(path string) func() {
	c.mu.Lock()
	if c.locks == nil {
		c.locks = map[string]*sync.Mutex{}
	}
	l, ok := c.locks[path]
	if !ok {
		l = &sync.Mutex{}
		c.locks[path] = l
	}
	c.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// Error kinds a user can act on (errors.Is).
var (
	ErrRepositoryNotFound = errors.New("repository not found")
	ErrAuthentication     = errors.New("authentication failed")
	ErrBranchNotFound     = errors.New("branch not found")
	ErrCommitNotFound     = errors.New("commit not found")
)

// Fetched is a mirror brought up to date, open for reading, and the commit
// the branch (or the requested commit) points at.
type Fetched struct {
	Repo   *git.Repository
	Commit *object.Commit
	unlock func()
}

// Close releases the mirror for other writers.
func (f *Fetched) Close() {
	if f.unlock != nil {
		f.unlock()
		f.unlock = nil
	}
}

// Fetch brings the mirror of r up to date for branch and returns the
// branch's head, or commit when it is not "" (a sourceRevisions
// override: it must be in the branch's fetched history or already in the
// mirror). The caller must Close the result.
func (c *Cache) Fetch(ctx context.Context, r Repo, branch, commit string) (*Fetched, error) {
	if err := checkBranch(branch); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return nil, err
	}
	path := c.path(r)
	unlock := c.lock(path)
	ok := false
	defer func() {
		if !ok {
			unlock()
		}
	}()
	auth, err := authMethod(r.Conn)
	if err != nil {
		return nil, err
	}
	repo, err := git.PlainOpen(path)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		repo, err = c.create(ctx, r, path, branch, auth)
	} else if err == nil {
		err = fetch(ctx, repo, r, branch, auth)
	}
	if err != nil {
		return nil, err
	}
	now := time.Now()
	_ = os.Chtimes(path, now, now) // recency, for eviction
	var hash plumbing.Hash
	if commit != "" {
		if !plumbing.IsHash(commit) {
			return nil, fmt.Errorf("%w: '%s' is not a full commit id (40 hex digits)", ErrCommitNotFound, commit)
		}
		hash = plumbing.NewHash(commit)
	} else {
		ref, err := repo.Reference(plumbing.NewBranchReferenceName(branch), true)
		if err != nil {
			return nil, fmt.Errorf("%w: branch %s of %s", ErrBranchNotFound, branch, r.describe())
		}
		hash = ref.Hash()
	}
	co, err := repo.CommitObject(hash)
	if err != nil {
		return nil, fmt.Errorf("%w: commit %s is not in %s (fetched branch %s)", ErrCommitNotFound, hash, r.describe(), branch)
	}
	c.evict(path)
	ok = true
	return &Fetched{Repo: repo, Commit: co, unlock: unlock}, nil
}

// create makes a new mirror in a staging directory, fetches, and renames
// it into place.
func (c *Cache) create(ctx context.Context, r Repo, path, branch string, auth transport.AuthMethod) (*git.Repository, error) {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	staging := path + ".staging-" + hex.EncodeToString(rnd[:])
	defer os.RemoveAll(staging)
	repo, err := git.PlainInit(staging, true)
	if err != nil {
		return nil, err
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{r.URL()}}); err != nil {
		return nil, err
	}
	if err := fetch(ctx, repo, r, branch, auth); err != nil {
		return nil, err
	}
	if err := os.Rename(staging, path); err != nil {
		return nil, err
	}
	return git.PlainOpen(path)
}

func fetch(ctx context.Context, repo *git.Repository, r Repo, branch string, auth transport.AuthMethod) error {
	ref := plumbing.NewBranchReferenceName(branch)
	err := repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: "origin",
		RemoteURL:  r.URL(),
		RefSpecs:   []config.RefSpec{config.RefSpec("+" + ref.String() + ":" + ref.String())},
		Auth:       auth,
		Tags:       git.NoTags,
		Force:      true,
	})
	return classify(err, r, branch)
}

// classify turns go-git's errors into ones that name the connection and
// repository (never a credential) and that errors.Is can sort.
func classify(err error, r Repo, branch string) error {
	var noRef git.NoMatchingRefSpecError
	switch {
	case err == nil, errors.Is(err, git.NoErrAlreadyUpToDate):
		return nil
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return fmt.Errorf("%w: %s (%s)", ErrRepositoryNotFound, r.describe(), connections.RedactURL(r.URL()))
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed), errors.Is(err, transport.ErrInvalidAuthMethod):
		return fmt.Errorf("%w: %s refused the credentials of connection %s", ErrAuthentication, connections.RedactURL(r.URL()), r.Conn.ConnectionArn)
	case errors.As(err, &noRef), errors.Is(err, transport.ErrEmptyRemoteRepository):
		return fmt.Errorf("%w: branch %s does not exist in %s", ErrBranchNotFound, branch, r.describe())
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return fmt.Errorf("cannot reach %s for %s: %v", connections.RedactURL(r.URL()), r.describe(), redact(err, r))
	}
	return fmt.Errorf("fetch %s: %v", r.describe(), redact(err, r))
}

// redact removes the connection's secrets from an error text, in case a
// library put one there.
func redact(err error, r Repo) string {
	s := err.Error()
	for _, secret := range []string{r.Conn.Credentials.Token, r.Conn.Credentials.Password} {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}

// checkBranch refuses branch names Git would refuse, and ones that would
// leave refs/heads/.
func checkBranch(b string) error {
	if b == "" || strings.HasPrefix(b, "-") || strings.HasPrefix(b, "/") || strings.HasSuffix(b, "/") || strings.HasSuffix(b, ".lock") ||
		strings.Contains(b, "..") || strings.Contains(b, "//") || strings.Contains(b, "@{") || strings.ContainsAny(b, " ~^:?*[\\\x7f") {
		return fmt.Errorf("%w: '%s' is not a valid branch name", ErrBranchNotFound, b)
	}
	for _, c := range b {
		if c < 0x20 {
			return fmt.Errorf("%w: '%s' is not a valid branch name", ErrBranchNotFound, b)
		}
	}
	return nil
}

// authMethod builds go-git's auth from a connection's credentials.
func authMethod(c connections.Resolved) (transport.AuthMethod, error) {
	cr := c.Credentials
	switch cr.Kind {
	case connections.KindNone:
		return nil, nil
	case connections.KindToken:
		user := cr.Username
		if user == "" {
			user = "x-access-token"
		}
		return &githttp.BasicAuth{Username: user, Password: cr.Token}, nil
	case connections.KindBasic:
		return &githttp.BasicAuth{Username: cr.Username, Password: cr.Password}, nil
	case connections.KindSSH:
		user := cr.Username
		if user == "" {
			user = "git"
		}
		keys, err := gitssh.NewPublicKeys(user, []byte(cr.SSHPrivateKey), "")
		if err != nil {
			return nil, fmt.Errorf("connection %s: its SSH key cannot be used", c.ConnectionArn)
		}
		pinned, algos, err := pinnedHostKeys(cr.KnownHosts)
		if err != nil {
			return nil, fmt.Errorf("connection %s: %w", c.ConnectionArn, err)
		}
		keys.HostKeyCallback = func(_ string, _ net.Addr, key ssh.PublicKey) error {
			for _, k := range pinned {
				if bytes.Equal(k.Marshal(), key.Marshal()) {
					return nil
				}
			}
			return fmt.Errorf("the server's host key is not the one pinned on connection %s", c.ConnectionArn)
		}
		keys.HostKeyAlgorithms = algos
		return keys, nil
	}
	return nil, fmt.Errorf("connection %s has credentials of unknown kind %q", c.ConnectionArn, cr.Kind)
}

// pinnedHostKeys reads the keys of known_hosts lines (whatever host they
// name: the connection pins them) and their algorithms.
func pinnedHostKeys(kh string) ([]ssh.PublicKey, []string, error) {
	var keys []ssh.PublicKey
	var algos []string
	rest := []byte(kh)
	for len(bytes.TrimSpace(rest)) > 0 {
		_, _, key, _, r, err := ssh.ParseKnownHosts(rest)
		if err != nil {
			return nil, nil, errors.New("its known-hosts entry cannot be read")
		}
		keys = append(keys, key)
		algos = append(algos, key.Type())
		rest = r
	}
	if len(keys) == 0 {
		return nil, nil, errors.New("it has no known-hosts entry to pin the server's key")
	}
	return keys, algos, nil
}

// evict removes least recently used mirrors (not keep) while the cache is
// over its bound. Mirrors another job holds are skipped.
func (c *Cache) evict(keep string) {
	max := c.MaxBytes
	if max <= 0 {
		max = DefaultMaxBytes
	}
	entries, err := os.ReadDir(c.Dir)
	if err != nil {
		return
	}
	type mirror struct {
		path string
		size int64
		used time.Time
	}
	var all []mirror
	var total int64
	for _, e := range entries {
		if !e.IsDir() || !strings.HasSuffix(e.Name(), ".git") {
			continue
		}
		p := filepath.Join(c.Dir, e.Name())
		info, err := e.Info()
		if err != nil {
			continue
		}
		size := dirSize(p)
		total += size
		all = append(all, mirror{p, size, info.ModTime()})
	}
	if total <= max {
		return
	}
	sort.Slice(all, func(i, j int) bool { return all[i].used.Before(all[j].used) })
	for _, m := range all {
		if total <= max {
			return
		}
		if m.path == keep || !c.tryLock(m.path) {
			continue
		}
		err := os.RemoveAll(m.path)
		c.unlockPath(m.path)
		if err == nil {
			total -= m.size
			if c.Log != nil {
				c.Log.Info("git mirror evicted", "mirror", filepath.Base(m.path), "bytes", m.size)
			}
		}
	}
}

func (c *Cache) tryLock(path string) bool {
	c.mu.Lock()
	l, ok := c.locks[path]
	if !ok {
		l = &sync.Mutex{}
		c.locks[path] = l
	}
	c.mu.Unlock()
	return l.TryLock()
}

func (c *Cache) unlockPath(path string) {
	c.mu.Lock()
	l := c.locks[path]
	c.mu.Unlock()
	l.Unlock()
}

func dirSize(path string) int64 {
	var n int64
	_ = filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
