// Package connections is the service behind the CodeConnections and CodeStar
// Connections APIs: connections to Git providers and the hosts of
// self-managed ones, their tags, and their credentials, which an operator
// sets with `pipelined admin set-connection-credentials` (AWS does this in
// its console with an OAuth handshake). Credentials are sealed under the
// master key before they reach the store and never leave the service but
// through Resolve, for the Git source action.
//
// The two APIs differ only in their ARNs' service name: a View answers in
// one of them, and every method accepts ARNs of both.
package connections

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"

	"github.com/google/uuid"

	cc "github.com/pipelined/pipelined/internal/connwire/codeconnections"
	"github.com/pipelined/pipelined/internal/secrets"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// ARN service names of the two APIs.
const (
	ServiceCodeConnections = "codeconnections"
	ServiceCodeStar        = "codestar-connections"
)

// Limits (AWS's where it documents one).
const (
	MaxTags           = 50  // tags per resource
	defaultMaxResults = 50  // ListConnections/ListHosts without MaxResults
	maxResultsCap     = 100 // the model's bound of MaxResults
)

// Connection statuses.
const (
	StatusPending   = "PENDING"
	StatusAvailable = "AVAILABLE"
	StatusError     = "ERROR"
)

// HostStatusAvailable is a host's status: pipelined reaches a host's
// endpoint directly (there is no VPC to set up), so a host is available
// once created.
const HostStatusAvailable = "AVAILABLE"

// Service manages connections and hosts.
type Service struct {
	store     store.Store
	sealer    *secrets.Sealer
	region    string
	accountID string
	log       *slog.Logger
}

// New returns the service.
func New(st store.Store, sealer *secrets.Sealer, region, accountID string, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: st, sealer: sealer, region: region, accountID: accountID, log: log}
}

// ---------------------------------------------------------------------------
// ARNs
// ---------------------------------------------------------------------------

// Resource kinds of ARNs.
const (
	kindConnection = "connection"
	kindHost       = "host"
)

// arnRE matches the ARNs of both services: arn:aws:<service>:<region>:<account>:<kind>/<id>.
var arnRE = regexp.MustCompile(`^arn:aws(?:-[a-z]+)*:(codeconnections|codestar-connections):([a-z0-9-]+):([0-9]{12}):(connection|host)/([A-Za-z0-9._-]+)$`)

func (s *Service) arn(service, kind, id string) string {
	return fmt.Sprintf("arn:aws:%s:%s:%s:%s/%s", service, s.region, s.accountID, kind, id)
}

// parseARN returns the resource id of an ARN of the given kind ("" for
// either) and the kind; an ARN of another region or account names nothing
// here.
func (s *Service) parseARN(arn, kind, field string) (gotKind, id string, err error) {
	m := arnRE.FindStringSubmatch(arn)
	if m == nil || (kind != "" && m[4] != kind) {
		what := "a connection or host ARN"
		if kind != "" {
			what = "a " + kind + " ARN"
		}
		return "", "", wire.Errorf(wire.ErrValidation, "%s '%s' is not %s (arn:aws:codeconnections:<region>:<account>:%s/<id>, or codestar-connections)", field, arn, what, orKind(kind))
	}
	if m[2] != s.region || m[3] != s.accountID {
		return "", "", notFound(m[4], arn)
	}
	return m[4], m[5], nil
}

func orKind(kind string) string {
	if kind == "" {
		return "connection"
	}
	return kind
}

func notFound(kind, arn string) error {
	return wire.Errorf(cc.ErrResourceNotFound, "Resource not found: %s %s does not exist", kind, arn)
}

// ---------------------------------------------------------------------------
// Views: one per API
// ---------------------------------------------------------------------------

// View answers the CodeConnections operations with ARNs of one service.
// The CodeStar Connections API converts its shapes to and from these.
type View struct {
	cc.Unimplemented
	s       *Service
	service string
}

// View returns the API of one service name (ServiceCodeConnections or
// ServiceCodeStar).
func (s *Service) View(service string) View { return View{s: s, service: service} }

var _ cc.API = View{}

// cloudProviders are the providers with a well-known endpoint; the others
// need a host.
var cloudProviders = map[cc.ProviderType]string{
	cc.ProviderTypeGitHub:    "https://github.com",
	cc.ProviderTypeGitLab:    "https://gitlab.com",
	cc.ProviderTypeBitbucket: "https://bitbucket.org",
}

// hostProviders are the provider types of hosts.
var hostProviders = map[cc.ProviderType]bool{
	cc.ProviderTypeGitHubEnterpriseServer: true,
	cc.ProviderTypeGitLabSelfManaged:      true,
}

func (v View) CreateConnection(ctx context.Context, in *cc.CreateConnectionInput) (*cc.CreateConnectionOutput, error) {
	if err := checkTags(in.Tags); err != nil {
		return nil, err
	}
	c := store.GitConnection{ID: uuid.NewString(), Name: in.ConnectionName, ProviderType: string(in.ProviderType), Status: StatusPending}
	switch {
	case in.HostArn != "" && in.ProviderType != "":
		// AWS takes the provider from the host; a different one is a mistake.
	case in.HostArn == "" && in.ProviderType == "":
		return nil, wire.Errorf(wire.ErrValidation, "CreateConnection needs a ProviderType (GitHub, GitLab, Bitbucket) or a HostArn (for GitHubEnterpriseServer and GitLabSelfManaged)")
	}
	if in.HostArn != "" {
		_, hostID, err := v.s.parseARN(in.HostArn, kindHost, "HostArn")
		if err != nil {
			return nil, err
		}
		h, err := v.s.store.GetGitHost(ctx, hostID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound(kindHost, in.HostArn)
		}
		if err != nil {
			return nil, err
		}
		if in.ProviderType != "" && string(in.ProviderType) != h.ProviderType {
			return nil, wire.Errorf(wire.ErrValidation, "ProviderType '%s' differs from the provider type '%s' of host %s", in.ProviderType, h.ProviderType, in.HostArn)
		}
		c.HostID, c.ProviderType = hostID, h.ProviderType
	} else {
		if hostProviders[in.ProviderType] {
			return nil, wire.Errorf(wire.ErrValidation, "A connection of ProviderType '%s' needs a HostArn: create a host first (CreateHost)", in.ProviderType)
		}
		if _, ok := cloudProviders[in.ProviderType]; !ok {
			return nil, wire.Errorf(cc.ErrUnsupportedProviderType, "ProviderType '%s' is not supported by pipelined (supported: GitHub, GitLab, Bitbucket, and GitHubEnterpriseServer and GitLabSelfManaged through a host)", in.ProviderType)
		}
	}
	if _, err := v.s.store.CreateGitConnection(ctx, c, storeTags(in.Tags)); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound(kindHost, in.HostArn) // deleted meanwhile
		}
		return nil, err
	}
	v.s.log.Info("connection created", "connection", v.s.arn(v.service, kindConnection, c.ID), "provider", c.ProviderType)
	return &cc.CreateConnectionOutput{ConnectionArn: v.s.arn(v.service, kindConnection, c.ID), Tags: in.Tags}, nil
}

func (v View) connection(c store.GitConnection) cc.Connection {
	out := cc.Connection{
		ConnectionArn: v.s.arn(v.service, kindConnection, c.ID), ConnectionName: c.Name,
		ConnectionStatus: cc.ConnectionStatus(c.Status), OwnerAccountId: v.s.accountID, ProviderType: cc.ProviderType(c.ProviderType),
	}
	if c.HostID != "" {
		out.HostArn = v.s.arn(v.service, kindHost, c.HostID)
	}
	return out
}

func (v View) getConnection(ctx context.Context, arn, field string) (store.GitConnection, error) {
	_, id, err := v.s.parseARN(arn, kindConnection, field)
	if err != nil {
		return store.GitConnection{}, err
	}
	c, err := v.s.store.GetGitConnection(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return c, notFound(kindConnection, arn)
	}
	return c, err
}

func (v View) GetConnection(ctx context.Context, in *cc.GetConnectionInput) (*cc.GetConnectionOutput, error) {
	c, err := v.getConnection(ctx, in.ConnectionArn, "ConnectionArn")
	if err != nil {
		return nil, err
	}
	conn := v.connection(c)
	return &cc.GetConnectionOutput{Connection: &conn}, nil
}

func (v View) ListConnections(ctx context.Context, in *cc.ListConnectionsInput) (*cc.ListConnectionsOutput, error) {
	f := store.GitConnectionFilter{ProviderType: string(in.ProviderTypeFilter)}
	if in.HostArnFilter != "" {
		_, hostID, err := v.s.parseARN(in.HostArnFilter, kindHost, "HostArnFilter")
		if err != nil {
			if e, ok := wire.AsError(err); ok && e.Code == cc.ErrResourceNotFound {
				return &cc.ListConnectionsOutput{Connections: []cc.Connection{}}, nil
			}
			return nil, err
		}
		f.HostID = hostID
	}
	limit, after, err := page(in.MaxResults, in.NextToken)
	if err != nil {
		return nil, err
	}
	got, err := v.s.store.ListGitConnections(ctx, f, after, limit+1)
	if err != nil {
		return nil, err
	}
	out := &cc.ListConnectionsOutput{Connections: []cc.Connection{}}
	if len(got) > limit {
		got = got[:limit]
		out.NextToken = nextToken(got[limit-1].ID)
	}
	for _, c := range got {
		out.Connections = append(out.Connections, v.connection(c))
	}
	return out, nil
}

func (v View) DeleteConnection(ctx context.Context, in *cc.DeleteConnectionInput) (*cc.DeleteConnectionOutput, error) {
	_, id, err := v.s.parseARN(in.ConnectionArn, kindConnection, "ConnectionArn")
	if err != nil {
		return nil, err
	}
	if err := v.s.store.DeleteGitConnection(ctx, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound(kindConnection, in.ConnectionArn)
		}
		return nil, err
	}
	v.s.log.Info("connection deleted", "connection", in.ConnectionArn)
	return &cc.DeleteConnectionOutput{}, nil
}

// hostIDUnsafe is what a host's name may not bring into its ARN.
var hostIDUnsafe = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

func (v View) CreateHost(ctx context.Context, in *cc.CreateHostInput) (*cc.CreateHostOutput, error) {
	if err := checkTags(in.Tags); err != nil {
		return nil, err
	}
	if !hostProviders[in.ProviderType] {
		return nil, wire.Errorf(cc.ErrUnsupportedProviderType, "ProviderType '%s' cannot have a host: hosts are for GitHubEnterpriseServer and GitLabSelfManaged (any Git server over https, http or ssh serves as either)", in.ProviderType)
	}
	endpoint, err := CheckEndpoint(in.ProviderEndpoint)
	if err != nil {
		return nil, err
	}
	var vpc []byte
	if in.VpcConfiguration != nil {
		if vpc, err = json.Marshal(in.VpcConfiguration); err != nil {
			return nil, err
		}
	}
	// The id is the name made safe, and random: two hosts may share a name.
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	prefix := strings.Trim(hostIDUnsafe.ReplaceAllString(in.Name, "-"), "-")
	if len(prefix) > 32 {
		prefix = prefix[:32]
	}
	if prefix == "" {
		prefix = "host"
	}
	h := store.GitHost{ID: prefix + "-" + hex.EncodeToString(rnd[:]), Name: in.Name, ProviderType: string(in.ProviderType), Endpoint: endpoint, VPC: vpc}
	if _, err := v.s.store.CreateGitHost(ctx, h, storeTags(in.Tags)); err != nil {
		return nil, err
	}
	arn := v.s.arn(v.service, kindHost, h.ID)
	v.s.log.Info("host created", "host", arn, "provider", h.ProviderType, "endpoint", endpoint)
	return &cc.CreateHostOutput{HostArn: arn, Tags: in.Tags}, nil
}

// CheckEndpoint checks a host's ProviderEndpoint: an absolute https, http
// or ssh URL without credentials, query or fragment (credentials belong in
// the connection, sealed). It returns it without a trailing slash.
func CheckEndpoint(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	bad := func(why string) error {
		return wire.Errorf(wire.ErrValidation, "ProviderEndpoint '%s' %s", endpoint, why)
	}
	switch {
	case err != nil:
		return "", bad("is not a URL")
	case u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "ssh":
		return "", bad("must be an https://, http:// or ssh:// URL")
	case u.Host == "":
		return "", bad("has no host")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "", bad("may not have a query or fragment")
	}
	if u.User != nil {
		if _, hasPassword := u.User.Password(); hasPassword || u.Scheme != "ssh" {
			// Only ssh's user name (git@) may be in the URL; never a secret.
			return "", wire.Errorf(wire.ErrValidation, "ProviderEndpoint may not hold credentials: set them on the connection (pipelined admin set-connection-credentials)")
		}
	}
	return strings.TrimRight(endpoint, "/"), nil
}

func (v View) getHost(ctx context.Context, arn, field string) (store.GitHost, error) {
	_, id, err := v.s.parseARN(arn, kindHost, field)
	if err != nil {
		return store.GitHost{}, err
	}
	h, err := v.s.store.GetGitHost(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return h, notFound(kindHost, arn)
	}
	return h, err
}

func vpcOf(h store.GitHost) *cc.VpcConfiguration {
	if h.VPC == nil {
		return nil
	}
	var vpc cc.VpcConfiguration
	if json.Unmarshal(h.VPC, &vpc) != nil {
		return nil
	}
	return &vpc
}

func (v View) GetHost(ctx context.Context, in *cc.GetHostInput) (*cc.GetHostOutput, error) {
	h, err := v.getHost(ctx, in.HostArn, "HostArn")
	if err != nil {
		return nil, err
	}
	return &cc.GetHostOutput{Name: h.Name, ProviderEndpoint: h.Endpoint, ProviderType: cc.ProviderType(h.ProviderType), Status: HostStatusAvailable, VpcConfiguration: vpcOf(h)}, nil
}

func (v View) ListHosts(ctx context.Context, in *cc.ListHostsInput) (*cc.ListHostsOutput, error) {
	limit, after, err := page(in.MaxResults, in.NextToken)
	if err != nil {
		return nil, err
	}
	got, err := v.s.store.ListGitHosts(ctx, after, limit+1)
	if err != nil {
		return nil, err
	}
	out := &cc.ListHostsOutput{Hosts: []cc.Host{}}
	if len(got) > limit {
		got = got[:limit]
		out.NextToken = nextToken(got[limit-1].ID)
	}
	for _, h := range got {
		out.Hosts = append(out.Hosts, cc.Host{
			HostArn: v.s.arn(v.service, kindHost, h.ID), Name: h.Name, ProviderEndpoint: h.Endpoint,
			ProviderType: cc.ProviderType(h.ProviderType), Status: HostStatusAvailable, VpcConfiguration: vpcOf(h),
		})
	}
	return out, nil
}

func (v View) DeleteHost(ctx context.Context, in *cc.DeleteHostInput) (*cc.DeleteHostOutput, error) {
	_, id, err := v.s.parseARN(in.HostArn, kindHost, "HostArn")
	if err != nil {
		return nil, err
	}
	switch err := v.s.store.DeleteGitHost(ctx, id); {
	case errors.Is(err, store.ErrNotFound):
		return nil, notFound(kindHost, in.HostArn)
	case errors.Is(err, store.ErrConflict):
		return nil, wire.Errorf(cc.ErrResourceUnavailable, "Host %s has connections: delete them first", in.HostArn)
	case err != nil:
		return nil, err
	}
	v.s.log.Info("host deleted", "host", in.HostArn)
	return &cc.DeleteHostOutput{}, nil
}

// resource resolves a tagged resource's ARN to its tag resource key,
// checking that it exists.
func (v View) resource(ctx context.Context, arn string) (string, error) {
	kind, id, err := v.s.parseARN(arn, "", "ResourceArn")
	if err != nil {
		return "", err
	}
	if kind == kindHost {
		if _, err := v.getHost(ctx, arn, "ResourceArn"); err != nil {
			return "", err
		}
		return store.GitHostResource(id), nil
	}
	if _, err := v.getConnection(ctx, arn, "ResourceArn"); err != nil {
		return "", err
	}
	return store.GitConnectionResource(id), nil
}

func (v View) TagResource(ctx context.Context, in *cc.TagResourceInput) (*cc.TagResourceOutput, error) {
	res, err := v.resource(ctx, in.ResourceArn)
	if err != nil {
		return nil, err
	}
	err = v.s.store.UpdateTags(ctx, res, func(cur []store.Tag) ([]store.Tag, error) {
		merged := map[string]string{}
		order := []string{}
		for _, t := range append(cur, storeTags(in.Tags)...) {
			if _, ok := merged[t.Key]; !ok {
				order = append(order, t.Key)
			}
			merged[t.Key] = t.Value
		}
		if len(order) > MaxTags {
			return nil, wire.Errorf(cc.ErrLimitExceeded, "A resource may have at most %d tags; %s would have %d", MaxTags, in.ResourceArn, len(order))
		}
		out := make([]store.Tag, 0, len(order))
		for _, k := range order {
			out = append(out, store.Tag{Key: k, Value: merged[k]})
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	return &cc.TagResourceOutput{}, nil
}

func (v View) UntagResource(ctx context.Context, in *cc.UntagResourceInput) (*cc.UntagResourceOutput, error) {
	res, err := v.resource(ctx, in.ResourceArn)
	if err != nil {
		return nil, err
	}
	drop := map[string]bool{}
	for _, k := range in.TagKeys {
		drop[k] = true
	}
	err = v.s.store.UpdateTags(ctx, res, func(cur []store.Tag) ([]store.Tag, error) {
		out := cur[:0:0]
		for _, t := range cur {
			if !drop[t.Key] {
				out = append(out, t)
			}
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	return &cc.UntagResourceOutput{}, nil
}

func (v View) ListTagsForResource(ctx context.Context, in *cc.ListTagsForResourceInput) (*cc.ListTagsForResourceOutput, error) {
	res, err := v.resource(ctx, in.ResourceArn)
	if err != nil {
		return nil, err
	}
	tags, err := v.s.store.Tags(ctx, res)
	if err != nil {
		return nil, err
	}
	out := &cc.ListTagsForResourceOutput{Tags: []cc.Tag{}}
	for _, t := range tags {
		out.Tags = append(out.Tags, cc.Tag{Key: t.Key, Value: t.Value})
	}
	return out, nil
}

func checkTags(tags []cc.Tag) error {
	if len(tags) > MaxTags {
		return wire.Errorf(cc.ErrLimitExceeded, "A resource may have at most %d tags; Tags has %d", MaxTags, len(tags))
	}
	seen := map[string]bool{}
	for _, t := range tags {
		if seen[t.Key] {
			return wire.Errorf(wire.ErrValidation, "Tags has the key '%s' twice", t.Key)
		}
		seen[t.Key] = true
	}
	return nil
}

func storeTags(tags []cc.Tag) []store.Tag {
	out := make([]store.Tag, 0, len(tags))
	for _, t := range tags {
		out = append(out, store.Tag{Key: t.Key, Value: t.Value})
	}
	return out
}

// page reads MaxResults and NextToken (the last id of the previous page,
// base64url-encoded).
func page(maxResults *int, token string) (limit int, after string, err error) {
	limit = defaultMaxResults
	if maxResults != nil && *maxResults > 0 {
		limit = min(*maxResults, maxResultsCap)
	}
	if token != "" {
		b, derr := base64.RawURLEncoding.DecodeString(token)
		if derr != nil || len(b) == 0 {
			return 0, "", wire.Errorf(wire.ErrValidation, "NextToken '%s' is not a token this API returned", token)
		}
		after = string(b)
	}
	return limit, after, nil
}

func nextToken(lastID string) string { return base64.RawURLEncoding.EncodeToString([]byte(lastID)) }
