package store

import (
	"context"
	"time"
)

// ---------------------------------------------------------------------------
// Git connections and hosts (CodeConnections)
// ---------------------------------------------------------------------------

// GitHost is a self-managed Git server (a CodeConnections host): the base
// URL that repositories of its connections live under.
type GitHost struct {
	ID           string // the host ARN's resource id (<name>-<hex>); unique
	Name         string
	ProviderType string
	Endpoint     string
	// VPC is the JSON of the host's VpcConfiguration (nil: none); kept
	// byte for byte.
	VPC     []byte
	Created time.Time // assigned by the store
}

// GitConnection is a connection to a Git provider (a CodeConnections
// connection). Its credentials are sealed by the caller under the master
// key: the store never sees them in clear.
type GitConnection struct {
	ID           string // the connection ARN's resource id (a UUID); unique
	Name         string
	ProviderType string
	HostID       string // "" for the cloud providers
	Status       string // PENDING, AVAILABLE or ERROR
	// SealedCredentials is "" until credentials are set; kept as given.
	SealedCredentials string
	Created           time.Time // assigned by the store
	Updated           time.Time // assigned by the store on every write
}

// GitConnectionFilter restricts ListGitConnections ("" fields match all).
type GitConnectionFilter struct {
	ProviderType string
	HostID       string
}

// GitConnectionResource and GitHostResource are the tag resource keys of
// connections and hosts.
func GitConnectionResource(id string) string { return "gitconnection/" + id }
func GitHostResource(id string) string       { return "githost/" + id }

// GitConnections stores connections and hosts.
type GitConnections interface {
	// CreateGitHost stores a host with its tags (under GitHostResource),
	// in one transaction, and returns it as stored. ErrAlreadyExists when
	// the ID is taken.
	CreateGitHost(ctx context.Context, h GitHost, tags []Tag) (GitHost, error)
	// GetGitHost reads a host (ErrNotFound).
	GetGitHost(ctx context.Context, id string) (GitHost, error)
	// ListGitHosts returns up to limit hosts with IDs after the given one,
	// in ID order (byte order).
	ListGitHosts(ctx context.Context, after string, limit int) ([]GitHost, error)
	// DeleteGitHost deletes a host and its tags. ErrNotFound when absent;
	// ErrConflict while a connection uses it.
	DeleteGitHost(ctx context.Context, id string) error

	// CreateGitConnection stores a connection with its tags (under
	// GitConnectionResource) in one transaction and returns it as stored.
	// ErrAlreadyExists when the ID is taken; ErrNotFound when HostID names
	// no host.
	CreateGitConnection(ctx context.Context, c GitConnection, tags []Tag) (GitConnection, error)
	// GetGitConnection reads a connection (ErrNotFound).
	GetGitConnection(ctx context.Context, id string) (GitConnection, error)
	// ListGitConnections returns up to limit connections matching f with
	// IDs after the given one, in ID order (byte order).
	ListGitConnections(ctx context.Context, f GitConnectionFilter, after string, limit int) ([]GitConnection, error)
	// UpdateGitConnection stores what fn returns for the stored connection,
	// in one transaction; the store keeps ID, HostID and Created and sets
	// Updated. ErrNotFound when absent (fn is not called); fn's errors
	// come back as they are.
	UpdateGitConnection(ctx context.Context, id string, fn func(GitConnection) (GitConnection, error)) (GitConnection, error)
	// DeleteGitConnection deletes a connection and its tags (ErrNotFound).
	DeleteGitConnection(ctx context.Context, id string) error
}
