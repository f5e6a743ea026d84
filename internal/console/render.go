package console

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/pipelined/pipelined/internal/consoleusers"
	"github.com/pipelined/pipelined/internal/wire"
)

// view is what every page template gets.
type view struct {
	Title   string
	Session consoleusers.Session
	// Nav is the top-level section the page belongs to.
	Nav  string
	Data any
	// Flash is a message of the last action (from the query string).
	Flash, FlashError string
	Now               time.Time
}

// CanApprove, CanOperate and IsAdmin let templates show only the controls
// the user may use (the handlers check again).
func (v view) CanApprove() bool { return v.Session.Role.Allows(consoleusers.Approver) }
func (v view) CanOperate() bool { return v.Session.Role.Allows(consoleusers.Operator) }
func (v view) IsAdmin() bool    { return v.Session.Role.Allows(consoleusers.Admin) }

var funcs = template.FuncMap{
	"ago":      ago,
	"exact":    exact,
	"ts":       tsTime,
	"status":   statusClass,
	"icon":     statusIcon,
	"path":     url.PathEscape,
	"query":    url.QueryEscape,
	"duration": duration,
	"short":    short,
	"deref":    func(p *int) int { return derefInt(p) },
	"add":      func(a, b int) int { return a + b },
	"safeURL":  safeURL,
	"isDisabled": func(t *wire.TransitionState) bool {
		return t != nil && t.Enabled != nil && !*t.Enabled
	},
	"transitionData": func(v view, s StageView) transitionData { return transitionData{View: v, Stage: s} },
}

// transitionData is what the transition partial gets: the page (for the
// session and pipeline name) and the stage the transition leads into.
type transitionData struct {
	View  view
	Stage StageView
}

// parseTemplates compiles each page with the shared layout and partials.
func parseTemplates() (map[string]*template.Template, error) {
	shared, err := fs.Glob(templateFS, "templates/_*.html")
	if err != nil {
		return nil, err
	}
	pages, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, p := range pages {
		name := strings.TrimSuffix(path.Base(p), ".html")
		if strings.HasPrefix(name, "_") {
			continue
		}
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, append([]string{p}, shared...)...)
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// render writes a page in the layout.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, page, title string, data any) {
	v := view{Title: title, Session: sessionOf(r), Data: data, Now: time.Now(), Nav: page,
		Flash: r.URL.Query().Get("done"), FlashError: r.URL.Query().Get("error")}
	var buf bytes.Buffer
	t := h.pages[page]
	if t == nil {
		h.log.Error("console: no such template", "page", page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		h.log.Error("console: rendering failed", "page", page, "err", err)
		http.Error(w, "The page could not be rendered; the server's log has the details.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// renderPartial renders one named template of a page (live updates).
func (h *Handler) renderPartial(page, name string, r *http.Request, data any) ([]byte, error) {
	var buf bytes.Buffer
	v := view{Session: sessionOf(r), Data: data, Now: time.Now()}
	if err := h.pages[page].ExecuteTemplate(&buf, name, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// fail shows an error page (or a short text answer to a script).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if strings.Contains(r.Header.Get("Accept"), "text/html") || r.Method == http.MethodGet {
		h.render(w, r, status, "error", http.StatusText(status), map[string]any{"Status": status, "Message": msg})
		return
	}
	http.Error(w, msg, status)
}

// apiError turns an operation's error into what a person reads: the API's
// own message for its errors (they are written for people), a generic
// one otherwise (logged).
func (h *Handler) apiError(err error) string {
	if e, ok := wire.AsError(err); ok {
		return e.Message
	}
	h.log.Error("console: operation failed", "err", err)
	return "The operation failed because of an internal error; the server's log has the details."
}

// back redirects to the page the form was on, with a message.
func back(w http.ResponseWriter, r *http.Request, to, key, msg string) {
	u := to
	if msg != "" {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + key + "=" + url.QueryEscape(msg)
	}
	http.Redirect(w, r, u, http.StatusSeeOther)
}

func tsTime(t *wire.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.Time()
}

func derefInt(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// ago is a relative time ("3 min ago"); the exact time goes in a title.
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	default:
		return fmt.Sprintf("%d days ago", int(d.Hours()/24))
	}
}

func exact(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func duration(a, b time.Time) string {
	if a.IsZero() || b.IsZero() {
		return ""
	}
	d := b.Sub(a).Round(time.Second)
	if d < 0 {
		return ""
	}
	return d.String()
}

func short(s string) string {
	if len(s) > 12 {
		return s[:8]
	}
	return s
}

// safeURL lets only http(s) links through (a worker's externalExecutionUrl
// or an approval's ExternalEntityLink is stored data: a javascript: URL
// must not become a link). html/template also filters unsafe schemes; this
// makes the rule explicit and drops the link entirely.
func safeURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return ""
	}
	return s
}

// statusClass is the CSS class of a status (colour is never the only
// signal: the icon and the text say it too).
func statusClass(s any) string {
	switch fmt.Sprint(s) {
	case "Succeeded", "Approved":
		return "ok"
	case "Failed", "Rejected", "Cancelled":
		return "bad"
	case "InProgress", "Stopping":
		return "run"
	case "Stopped", "Abandoned", "Superseded", "Skipped":
		return "stop"
	default:
		return "idle"
	}
}

func statusIcon(s any) string {
	switch statusClass(s) {
	case "ok":
		return "✔"
	case "bad":
		return "✖"
	case "run":
		return "◐"
	case "stop":
		return "■"
	default:
		return "○"
	}
}
