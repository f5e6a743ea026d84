package oidc

import (
	"bytes"
	"net/http"
	"testing"
	"time"
)

func TestHandler(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	e := newEnv(t, srv.URL)
	i := e.issuer()
	srv.serve(i)

	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/jwks"} {
		t.Run(path, func(t *testing.T) {
			url := srv.URL + path
			resp, body := get(t, "GET", url, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET: %s", resp.Status)
			}
			etag := resp.Header.Get("ETag")
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=300" {
				t.Errorf("Cache-Control %q, want public, max-age=300", cc)
			}
			if len(etag) < 3 || etag[0] != '"' {
				t.Errorf("ETag %q, want a strong entity tag", etag)
			}

			// The same bytes again: encoded once per key set.
			resp2, body2 := get(t, "GET", url, nil)
			if !bytes.Equal(body, body2) || resp2.Header.Get("ETag") != etag {
				t.Error("a second GET returned other bytes or ETag")
			}

			for _, inm := range []string{etag, "W/" + etag, `"nope", ` + etag, "*"} {
				resp, body := get(t, "GET", url, http.Header{"If-None-Match": {inm}})
				if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
					t.Errorf("If-None-Match %s: %s with %d bytes, want 304 and none", inm, resp.Status, len(body))
				}
				if resp.Header.Get("ETag") != etag || resp.Header.Get("Cache-Control") == "" {
					t.Errorf("304 lacks ETag or Cache-Control: %v", resp.Header)
				}
			}
			if resp, _ := get(t, "GET", url, http.Header{"If-None-Match": {`"other"`}}); resp.StatusCode != http.StatusOK {
				t.Errorf("If-None-Match of another tag: %s", resp.Status)
			}

			resp, body = get(t, "HEAD", url, nil)
			if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.ContentLength != int64(len(body2)) {
				t.Errorf("HEAD: %s, %d bytes, Content-Length %d", resp.Status, len(body), resp.ContentLength)
			}
			for _, m := range []string{"POST", "PUT", "DELETE", "OPTIONS"} {
				resp, _ := get(t, m, url, nil)
				if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
					t.Errorf("%s: %s, Allow %q", m, resp.Status, resp.Header.Get("Allow"))
				}
			}

			// A new key set is a new body and ETag; the old ETag no
			// longer matches.
			if err := i.Rotate(t.Context()); err != nil {
				t.Fatal(err)
			}
			resp, body3 := get(t, "GET", url, http.Header{"If-None-Match": {etag}})
			if path == "/.well-known/jwks" {
				if resp.StatusCode != http.StatusOK || bytes.Equal(body3, body) || resp.Header.Get("ETag") == etag {
					t.Errorf("JWKS after a rotation: %s, same body %v", resp.Status, bytes.Equal(body3, body))
				}
			}
		})
	}

	for _, path := range []string{"/", "/.well-known/jwks/", "/.well-known/openid-configuration.json", "/x/.well-known/jwks"} {
		if resp, _ := get(t, "GET", srv.URL+path, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", path, resp.Status)
		}
	}
}

func TestCacheControlShortRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "https://ci.example.com")
	i := e.issuer(func(c *Config) { c.RotationPeriod = 10 * time.Minute })
	if got := i.cacheControl(); got != "public, max-age=60" {
		t.Errorf("Cache-Control with a 10m rotation = %q, want a tenth of it", got)
	}
}
