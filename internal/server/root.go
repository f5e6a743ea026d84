package server

import (
	"context"
	"html/template"
	"net/http"
	"strings"

	"github.com/pipelined/pipelined/internal/sigv4"
	"github.com/pipelined/pipelined/internal/stsapi"
	"github.com/pipelined/pipelined/internal/workerkeys"
)

// rootHandler is the shared "/" route: STS (GetCallerIdentity, a form POST
// signed for sts), the landing page for a GET / without S3 authentication
// (a browser), and otherwise the CodePipeline API or the embedded S3 store
// (routeAPIOrS3).
func (s *Server) rootHandler(api, s3 http.Handler) http.Handler {
	sts := &stsapi.Handler{
		Verifier:  &sigv4.Verifier{Region: s.cfg.Region, Service: stsapi.SigningService, Lookup: s.apiLookup},
		AccountID: s.cfg.AccountID,
		Logger:    s.log,
	}
	rest := routeAPIOrS3(api, s3)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case stsapi.Matches(r):
			sts.ServeHTTP(w, r)
		case isLandingRequest(r) && acceptsHTML(r):
			// A browser: the web console (which sends it to sign in).
			http.Redirect(w, r, "/console/", http.StatusSeeOther)
		case isLandingRequest(r):
			s.serveLanding(w, r)
		default:
			rest.ServeHTTP(w, r)
		}
	})
}

// isLandingRequest: a GET (or HEAD) of / that carries no S3 authentication
// (no Authorization header, no presigned query). A signed ListBuckets
// (GET /) still reaches S3.
func isLandingRequest(r *http.Request) bool {
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || r.URL.Path != "/" {
		return false
	}
	if r.Header.Get("Authorization") != "" {
		return false
	}
	q := r.URL.Query()
	return !q.Has("X-Amz-Signature") && !q.Has("X-Amz-Credential") && !q.Has("X-Amz-Algorithm")
}

// acceptsHTML: the client asks for HTML first or at all (a browser), not
// a tool that accepts anything.
func acceptsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

var landingPage = template.Must(template.New("landing").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>pipelined</title></head>
<body>
<main>
<h1>pipelined</h1>
<p>This is a pipelined server: a self-hosted continuous-delivery service that speaks the AWS CodePipeline API.
Use the aws CLI, an AWS SDK or Terraform with this endpoint, or the web console in a browser.</p>
<ul>
<li>Web console: <a href="{{.URL}}/console/">{{.URL}}/console/</a> (console users are created with <code>pipelined admin create-console-user</code>)</li>
<li>CodePipeline API (AWS JSON 1.1, SigV4 for service <code>codepipeline</code>, region <code>{{.Region}}</code>): <code>POST {{.URL}}/</code>, for example <code>aws codepipeline list-pipelines --endpoint-url {{.URL}}</code></li>
<li>STS GetCallerIdentity (to check your credentials): <code>aws sts get-caller-identity --endpoint-url {{.URL}}</code></li>
{{if .S3}}<li>Artifact store (S3 API, path-style, SigV4 for service <code>s3</code>): <code>{{.URL}}/BUCKET/KEY</code></li>
{{end}}<li>Health: <a href="{{.URL}}/healthz">{{.URL}}/healthz</a></li>
<li>Metrics (Prometheus): <a href="{{.URL}}/metrics">{{.URL}}/metrics</a></li>
<li>OIDC discovery: <a href="{{.URL}}/.well-known/openid-configuration">{{.URL}}/.well-known/openid-configuration</a></li>
</ul>
<p>Requests need SigV4 signatures with the server's root credentials (in <code>&lt;data-dir&gt;/credentials</code>) or a worker key.</p>
</main>
</body>
</html>
`))

// serveLanding writes the landing page: what this server is and where its
// endpoints are, for a person who opened it in a browser.
func (s *Server) serveLanding(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.Method == http.MethodHead {
		return
	}
	_ = landingPage.Execute(w, struct {
		URL, Region string
		S3          bool
	}{strings.TrimRight(s.PublicURL, "/"), s.cfg.Region, s.s3 != nil})
}

// workerKeyOnS3 is the S3 API's answer for an access key id the artifact
// store does not know: when it is a worker key, its credential with a
// Refusal, so that a worker signing S3 requests with its worker key (once
// the signature checks out) learns what to use instead; otherwise unknown
// (notFound).
func workerKeyOnS3(ctx context.Context, wk *workerkeys.Service, accessKeyID string, notFound error) (sigv4.Credential, error) {
	cred, err := wk.Lookup(ctx, accessKeyID)
	if err != nil {
		return sigv4.Credential{}, notFound
	}
	cred.Scope = nil // nothing of it is used here but the secret
	cred.Refusal = "The access key " + accessKeyID + " is a pipelined worker key: worker keys sign CodePipeline job-protocol calls only and do not work on the S3 API. " +
		"To read and write artifacts, use the temporary credentials in the job's data (artifactCredentials: accessKeyId, secretAccessKey, sessionToken), " +
		"which PollForJobs and GetJobDetails return."
	return cred, nil
}
