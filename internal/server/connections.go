package server

import (
	"net/http"
	"path/filepath"

	"github.com/pipelined/pipelined/internal/awsjson"
	"github.com/pipelined/pipelined/internal/builtin"
	"github.com/pipelined/pipelined/internal/connapi"
	"github.com/pipelined/pipelined/internal/connections"
	cc "github.com/pipelined/pipelined/internal/connwire/codeconnections"
	cs "github.com/pipelined/pipelined/internal/connwire/codestar"
	"github.com/pipelined/pipelined/internal/gitsource"
	"github.com/pipelined/pipelined/internal/secrets"
	"github.com/pipelined/pipelined/internal/sigv4"
)

// setupConnections builds the connections service and the handler of the
// CodeConnections and CodeStar Connections APIs, signed by the root
// credentials for their own signing services.
func (s *Server) setupConnections(sealer *secrets.Sealer) http.Handler {
	s.connections = connections.New(s.store, sealer, s.cfg.Region, s.cfg.AccountID, s.log)
	return connapi.New(connapi.Config{
		Service:         s.connections,
		CodeConnections: awsjson.SigV4{Verifier: &sigv4.Verifier{Region: s.cfg.Region, Service: cc.SigningName, Lookup: s.rootLookup}},
		CodeStar:        awsjson.SigV4{Verifier: &sigv4.Verifier{Region: s.cfg.Region, Service: cs.SigningName, Lookup: s.rootLookup}},
		Logger:          s.log,
	})
}

// routeConnections sends the connection APIs' requests (by X-Amz-Target)
// to conn and everything else to next.
func routeConnections(conn, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/" && connapi.Handles(r) {
			conn.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Connections returns the server's connections service (tests and tools in
// this module).
func (s *Server) Connections() *connections.Service { return s.connections }

// GitDir is where the Git source's repository mirrors live, under the data
// dir.
const GitDir = "git"

// gitOptions gives the built-in workers what the Git source action needs:
// the connections service and the mirror cache.
func (s *Server) gitOptions(o *builtin.Options) {
	if o.Connections == nil && s.connections != nil {
		o.Connections = s.connections
	}
	if o.GitCache == nil {
		o.GitCache = &gitsource.Cache{Dir: filepath.Join(s.cfg.DataDir, GitDir), MaxBytes: s.cfg.GitCacheMaxBytes, Log: s.log}
	}
}
