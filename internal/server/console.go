package server

import (
	"context"
	"time"

	"github.com/pipelined/pipelined/internal/actiontypes"
	"github.com/pipelined/pipelined/internal/connections"
	cc "github.com/pipelined/pipelined/internal/connwire/codeconnections"
	"github.com/pipelined/pipelined/internal/console"
	"github.com/pipelined/pipelined/internal/consoleusers"
	"github.com/pipelined/pipelined/internal/engine"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/wire"
)

// consoleSweepInterval is how often ended console sessions are deleted.
const consoleSweepInterval = 10 * time.Minute

// setupConsole builds the console's users and handler; the engine tells
// the handler which pipeline changed, for the pages' live updates.
func (s *Server) setupConsole(api wire.API) (*console.Handler, error) {
	users, err := consoleusers.New(s.store, consoleusers.Options{
		IdleTimeout: s.cfg.ConsoleSessionIdle, MaxAge: s.cfg.ConsoleSessionMaxAge, Logger: s.log,
	})
	if err != nil {
		return nil, err
	}
	s.consoleUsers = users
	h, err := console.New(console.Config{
		PendingApprovals: s.pendingApprovals(),
		API:              api, Users: users, AccountID: s.cfg.AccountID, Region: s.cfg.Region, PublicURL: s.PublicURL, Logger: s.log, LiveRecheck: s.cfg.ConsoleLiveRecheck,
		Settings: console.Settings{
			WorkerKeys: func(ctx context.Context) ([]console.WorkerKeyView, error) {
				ks, err := s.workerKeys.List(ctx)
				out := make([]console.WorkerKeyView, 0, len(ks))
				for _, k := range ks {
					st := "Active"
					if !k.Active() {
						st = "Revoked"
					}
					out = append(out, console.WorkerKeyView{AccessKeyID: k.AccessKeyID, ActionType: actiontypes.Key(k.ActionType).String(),
						Description: k.Description, Status: st, Created: k.Created})
				}
				return out, err
			},
			Clients: func(ctx context.Context) ([]console.ClientView, error) {
				cs, err := s.store.ListClients(ctx, "")
				out := make([]console.ClientView, 0, len(cs))
				for _, c := range cs {
					st := "Active"
					if !c.Active() {
						st = "Revoked"
					}
					out = append(out, console.ClientView{ID: c.ID, Pipeline: c.Pipeline, Stage: c.Stage, Action: c.Action,
						ActionType: actiontypes.Key(c.ActionType).String(), Status: st, Created: c.Created})
				}
				return out, err
			},
			Connections: func(ctx context.Context) ([]console.ConnectionView, error) {
				var out []console.ConnectionView
				token := ""
				for range 100 { // at most 100 pages of 100
					page, err := s.connections.View(connections.ServiceCodeConnections).ListConnections(ctx, &cc.ListConnectionsInput{MaxResults: wire.Ptr(100), NextToken: token})
					if err != nil {
						return out, err
					}
					for _, c := range page.Connections {
						out = append(out, console.ConnectionView{Name: c.ConnectionName, ARN: c.ConnectionArn, ProviderType: string(c.ProviderType),
							Status: string(c.ConnectionStatus), HostARN: c.HostArn})
					}
					if token = page.NextToken; token == "" {
						break
					}
				}
				return out, nil
			},
			Issuer: func(context.Context) (console.IssuerView, error) {
				is := s.identity.issuer
				return console.IssuerView{URL: is.Issuer(), Algorithm: is.Algorithm(), KeyIDs: []string{is.SigningKeyID()}}, nil
			},
		},
	})
	if err != nil {
		return nil, err
	}
	s.engine.OnChange(h.Changed)
	return h, nil
}

// pendingApprovals counts the approvals waiting, by pipeline, from their
// timers in the store (nil when the store cannot count).
func (s *Server) pendingApprovals() func(context.Context) (map[string]int, error) {
	c, ok := s.store.(store.Counter)
	if !ok {
		return nil
	}
	return func(ctx context.Context) (map[string]int, error) {
		return c.CountTimersByPipeline(ctx, engine.ApprovalTimerSuffix)
	}
}

// runConsoleSweeper deletes ended console sessions now and then (every
// replica may: the deletes are idempotent).
func (s *Server) runConsoleSweeper(ctx context.Context) {
	t := time.NewTicker(consoleSweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := s.consoleUsers.SweepSessions(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("console: sweeping ended sessions failed", "err", err)
			} else if n > 0 {
				s.log.Debug("console: ended sessions deleted", "count", n)
			}
		}
	}
}
