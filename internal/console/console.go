// Package console is pipelined's web console: server-rendered pages for the
// people who watch releases and decide approvals, under /console/ on the
// server's listener.
//
// It is a transport, like awsjson: every page reads and every button acts
// through the same CodePipeline operations (wire.API) the API serves, with
// the signed-in console user as the caller, so no rule is implemented
// twice and the API's records (lastUpdatedBy, who approved, trigger detail)
// name the console user.
//
// Pages are html/template (contextual escaping of every stored value) with
// one small script, embedded in the binary; the read-only pages work with
// JavaScript off. Live updates are server-sent events: the engine tells the
// console which pipeline changed (engine.OnChange), and the pipeline page's
// stream sends the re-rendered stages when they differ from what the page
// shows.
//
// Security: sessions are server-side (internal/consoleusers), in an
// HttpOnly, SameSite=Lax cookie (Secure when the public URL is https);
// every state-changing request is a POST that must carry the session's
// CSRF token and pass Go's cross-origin protection (Sec-Fetch-Site /
// Origin); pages are served with a strict Content-Security-Policy (no
// inline script or style) and may not be framed.
package console

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pipelined/pipelined/internal/caller"
	"github.com/pipelined/pipelined/internal/consoleusers"
	"github.com/pipelined/pipelined/internal/wire"
)

// PathPrefix is where the console is mounted.
const PathPrefix = "/console/"

// cookieName is the session cookie's name.
const cookieName = "pipelined_console"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Settings is what the admin's settings page lists (each may be nil: the
// section then says it is not available).
type Settings struct {
	WorkerKeys func(ctx context.Context) ([]WorkerKeyView, error)
	Clients    func(ctx context.Context) ([]ClientView, error)
	// Issuer is the OIDC issuer URL and its published key ids.
	Issuer func(ctx context.Context) (IssuerView, error)
	// Connections are the CodeConnections connections (Git sources).
	Connections func(ctx context.Context) ([]ConnectionView, error)
}

// ConnectionView is a connection as the settings page shows it (never its
// credentials).
type ConnectionView struct {
	Name, ARN, ProviderType, Status, HostARN string
}

// WorkerKeyView is a worker key as the settings page shows it.
type WorkerKeyView struct {
	AccessKeyID, ActionType, Description, Status string
	Created                                      time.Time
}

// ClientView is a third-party client as the settings page shows it.
type ClientView struct {
	ID, Pipeline, Stage, Action, ActionType, Status string
	Created                                         time.Time
}

// IssuerView is the OIDC issuer as the settings page shows it.
type IssuerView struct {
	URL       string
	Algorithm string
	KeyIDs    []string
}

// Config configures a Handler.
type Config struct {
	API       wire.API
	Users     *consoleusers.Service
	AccountID string
	Region    string
	// PublicURL is the server's URL; an https one makes the cookie Secure.
	PublicURL string
	Settings  Settings
	Logger    *slog.Logger
	// PendingApprovals counts the approvals waiting for a decision, by
	// pipeline, in one read (nil: the pages read every pipeline's state).
	PendingApprovals func(ctx context.Context) (map[string]int, error)
	// LiveRecheck is how often an open pipeline page re-reads its state
	// without having heard of a change (a change on another replica);
	// default 5s.
	LiveRecheck time.Duration
}

// Handler serves the console.
type Handler struct {
	cfg    Config
	api    wire.API
	users  *consoleusers.Service
	log    *slog.Logger
	pages  map[string]*template.Template
	secure bool
	hub    *hub
	mux    *http.ServeMux
	static http.Handler
}

// New returns the console's handler.
func New(c Config) (*Handler, error) {
	h := &Handler{cfg: c, api: c.API, users: c.Users, log: c.Logger, hub: newHub()}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.cfg.LiveRecheck <= 0 {
		h.cfg.LiveRecheck = 5 * time.Second
	}
	h.secure = strings.HasPrefix(c.PublicURL, "https://")
	var err error
	if h.pages, err = parseTemplates(); err != nil {
		return nil, err
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	h.static = http.StripPrefix(PathPrefix+"static/", http.FileServer(http.FS(sub)))
	h.routes()
	return h, nil
}

// Changed tells open pages that a pipeline changed (engine.OnChange).
func (h *Handler) Changed(pipeline string) { h.hub.notify(pipeline) }

func (h *Handler) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /console/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, PathPrefix+"pipelines", http.StatusSeeOther)
	})
	m.Handle("GET /console/static/", h.static)
	m.HandleFunc("GET /console/signin", h.signInPage)
	m.HandleFunc("POST /console/signin", h.signIn)
	m.Handle("POST /console/signout", h.mutation(consoleusers.Viewer, h.signOut))

	m.Handle("GET /console/pipelines", h.page(consoleusers.Viewer, h.pipelinesPage))
	m.Handle("GET /console/pipelines/{name}", h.page(consoleusers.Viewer, h.pipelinePage))
	m.Handle("GET /console/pipelines/{name}/live", h.page(consoleusers.Viewer, h.pipelineLive))
	m.Handle("GET /console/pipelines/{name}/executions", h.page(consoleusers.Viewer, h.executionsPage))
	m.Handle("GET /console/pipelines/{name}/executions/{id}", h.page(consoleusers.Viewer, h.executionPage))
	m.Handle("GET /console/approvals", h.page(consoleusers.Viewer, h.approvalsPage))
	m.Handle("GET /console/pipelines/{name}/review/{stage}/{action}", h.page(consoleusers.Approver, h.reviewPage))
	m.Handle("GET /console/settings", h.page(consoleusers.Admin, h.settingsPage))

	m.Handle("POST /console/pipelines/{name}/review/{stage}/{action}", h.mutation(consoleusers.Approver, h.decide))
	m.Handle("POST /console/pipelines/{name}/release", h.mutation(consoleusers.Operator, h.release))
	m.Handle("POST /console/pipelines/{name}/stop", h.mutation(consoleusers.Operator, h.stop))
	m.Handle("POST /console/pipelines/{name}/retry", h.mutation(consoleusers.Operator, h.retry))
	m.Handle("POST /console/pipelines/{name}/transition", h.mutation(consoleusers.Operator, h.transition))
	h.mux = m
}

// ServeHTTP serves the console with its security headers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, PathPrefix+"static/") {
		hd.Set("Cache-Control", "no-store")
	}
	h.mux.ServeHTTP(w, r)
}

// ctxSession is the signed-in session in a request's context.
type ctxSession struct{}

func sessionOf(r *http.Request) consoleusers.Session {
	s, _ := r.Context().Value(ctxSession{}).(consoleusers.Session)
	return s
}

// authenticate resolves the request's session; ok false when there is none
// (the caller has answered).
func (h *Handler) authenticate(w http.ResponseWriter, r *http.Request, need consoleusers.Role, redirect bool) (*http.Request, bool) {
	c, err := r.Cookie(cookieName)
	var sess consoleusers.Session
	if err == nil {
		sess, err = h.users.Resolve(r.Context(), c.Value)
	}
	if err != nil {
		if !errors.Is(err, consoleusers.ErrNoSession) && !errors.Is(err, http.ErrNoCookie) {
			h.log.Error("console: resolving a session failed", "err", err)
			h.fail(w, r, http.StatusInternalServerError, "The server could not check your session; try again.")
			return nil, false
		}
		if redirect {
			http.Redirect(w, r, PathPrefix+"signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		} else {
			h.fail(w, r, http.StatusUnauthorized, "You are not signed in, or your session has ended.")
		}
		return nil, false
	}
	if !sess.Role.Allows(need) {
		h.fail(w, r, http.StatusForbidden, "Your role ("+string(sess.Role)+") does not allow this: it needs "+string(need)+".")
		return nil, false
	}
	ctx := context.WithValue(r.Context(), ctxSession{}, sess)
	// The API's records name the console user.
	ctx = caller.With(ctx, caller.Caller{AccessKeyID: "console/" + sess.User.Name, ARN: consoleusers.ARN(h.cfg.AccountID, sess.User.Name)})
	return r.WithContext(ctx), true
}

// page wraps a read-only page: it needs a session with role need.
func (h *Handler) page(need consoleusers.Role, fn http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, ok := h.authenticate(w, r, need, true)
		if ok {
			fn(w, r)
		}
	})
}

// maxForm bounds a form's body.
const maxForm = 64 << 10

// mutation wraps a state-changing POST: cross-origin protection, a session
// with role need, and the session's CSRF token.
func (h *Handler) mutation(need consoleusers.Role, fn http.HandlerFunc) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.log.Warn("console: cross-origin request refused", "path", r.URL.Path, "remote_addr", r.RemoteAddr)
		h.fail(w, r, http.StatusForbidden, "Cross-origin requests are refused.")
	}))
	return cop.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if err := r.ParseForm(); err != nil {
			h.fail(w, r, http.StatusBadRequest, "The form could not be read.")
			return
		}
		r, ok := h.authenticate(w, r, need, false)
		if !ok {
			return
		}
		token := r.PostFormValue("_csrf")
		if token == "" {
			token = r.Header.Get("X-CSRF-Token")
		}
		if !sessionOf(r).CheckCSRF(token) {
			h.log.Warn("console: request without a valid CSRF token refused", "path", r.URL.Path, "user", sessionOf(r).User.Name, "remote_addr", r.RemoteAddr)
			h.fail(w, r, http.StatusForbidden, "The form's security token is missing or wrong; reload the page and try again.")
			return
		}
		fn(w, r)
	}))
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// safeNext keeps a post-sign-in redirect on the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, PathPrefix) || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return PathPrefix + "pipelines"
	}
	return next
}

func (h *Handler) signInPage(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "signin", "Sign in", map[string]any{"Next": safeNext(r.URL.Query().Get("next"))})
}

func (h *Handler) signIn(w http.ResponseWriter, r *http.Request) {
	// Sign-in has no session yet, so no CSRF token: cross-origin protection
	// keeps other sites from signing a browser in (login CSRF).
	cop := http.NewCrossOriginProtection()
	if err := cop.Check(r); err != nil {
		h.fail(w, r, http.StatusForbidden, "Cross-origin requests are refused.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		h.fail(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	next := safeNext(r.PostFormValue("next"))
	sess, err := h.users.SignIn(r.Context(), r.PostFormValue("name"), r.PostFormValue("password"), remoteIP(r))
	var rl *consoleusers.RateLimitedError
	switch {
	case errors.As(err, &rl):
		w.Header().Set("Retry-After", rl.RetryAfter.Round(time.Second).String())
		h.render(w, r, http.StatusTooManyRequests, "signin", "Sign in", map[string]any{"Next": next, "Error": "Too many failed sign-ins. Try again in " + rl.RetryAfter.Round(time.Minute).String() + "."})
		return
	case errors.Is(err, consoleusers.ErrBadCredentials):
		h.render(w, r, http.StatusUnauthorized, "signin", "Sign in", map[string]any{"Next": next, "Name": r.PostFormValue("name"), "Error": "The user name or password is wrong."})
		return
	case err != nil:
		h.log.Error("console: sign-in failed", "err", err)
		h.fail(w, r, http.StatusInternalServerError, "Signing in failed; try again.")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: sess.ID, Path: PathPrefix, HttpOnly: true, Secure: h.secure,
		SameSite: http.SameSiteLaxMode, MaxAge: int(h.users.MaxAge().Seconds()),
	})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (h *Handler) signOut(w http.ResponseWriter, r *http.Request) {
	if err := h.users.SignOut(r.Context(), sessionOf(r).ID); err != nil {
		h.log.Error("console: sign-out failed", "err", err)
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: PathPrefix, HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteLaxMode, MaxAge: -1})
	http.Redirect(w, r, PathPrefix+"signin", http.StatusSeeOther)
}
