package server

import (
	"net/http"

	"github.com/pipelined/pipelined/internal/awsjson"
	"github.com/pipelined/pipelined/internal/connapi"
	"github.com/pipelined/pipelined/internal/connections"
	cc "github.com/pipelined/pipelined/internal/connwire/codeconnections"
	cs "github.com/pipelined/pipelined/internal/connwire/codestar"
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
