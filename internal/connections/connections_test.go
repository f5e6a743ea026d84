package connections

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/pipelined/pipelined/internal/wire"
)

func sshKeyAndKnownHosts(t testing.TB) (string, string) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	sshPub, _ := ssh.NewPublicKey(pub)
	return string(pem.EncodeToMemory(block)), "git.example.com " + string(ssh.MarshalAuthorizedKey(sshPub))
}

func TestCredentialsCheck(t *testing.T) {
	key, kh := sshKeyAndKnownHosts(t)
	for _, tc := range []struct {
		name string
		c    Credentials
		want string // "" for valid, else a word the message must hold
	}{
		{"token", Credentials{Kind: KindToken, Token: "t0k"}, ""},
		{"token with user", Credentials{Kind: KindToken, Token: "t0k", Username: "x-access-token"}, ""},
		{"empty token", Credentials{Kind: KindToken}, "token is required"},
		{"token with newline", Credentials{Kind: KindToken, Token: "a\nb"}, "line breaks"},
		{"token with password", Credentials{Kind: KindToken, Token: "a", Password: "p"}, "password does not go"},
		{"basic", Credentials{Kind: KindBasic, Username: "u", Password: "p"}, ""},
		{"basic without password", Credentials{Kind: KindBasic, Username: "u"}, "password are required"},
		{"ssh", Credentials{Kind: KindSSH, SSHPrivateKey: key, KnownHosts: kh}, ""},
		{"ssh without known hosts", Credentials{Kind: KindSSH, SSHPrivateKey: key}, "knownHosts is required"},
		{"ssh with a bad key", Credentials{Kind: KindSSH, SSHPrivateKey: "-----BEGIN nothing", KnownHosts: kh}, "sshPrivateKey is not"},
		{"ssh with bad known hosts", Credentials{Kind: KindSSH, SSHPrivateKey: key, KnownHosts: "git.example.com nonsense"}, "known_hosts format"},
		{"none", Credentials{Kind: KindNone}, ""},
		{"none with token", Credentials{Kind: KindNone, Token: "x"}, "token does not go"},
		{"unknown kind", Credentials{Kind: "oauth"}, "not one of"},
		{"huge", Credentials{Kind: KindToken, Token: strings.Repeat("a", maxSecret+1)}, "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Check()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			e, ok := wire.AsError(err)
			if !ok || e.Code != wire.ErrValidation || !strings.Contains(e.Message, tc.want) {
				t.Fatalf("Check = %v, want a ValidationException with %q", err, tc.want)
			}
			for _, secret := range []string{tc.c.Token, tc.c.Password, tc.c.SSHPrivateKey} {
				if len(secret) > 3 && strings.Contains(e.Message, secret) {
					t.Fatalf("the message shows a secret: %s", e.Message)
				}
			}
		})
	}
}

func TestCheckEndpoint(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" for refused
	}{
		{"https://git.example.com/", "https://git.example.com"},
		{"http://10.0.0.5:3000/org", "http://10.0.0.5:3000/org"},
		{"ssh://git@git.example.com:2222", "ssh://git@git.example.com:2222"},
		{"ssh://git:pw@git.example.com", ""},
		{"https://token@git.example.com", ""},
		{"ftp://git.example.com", ""},
		{"git.example.com", ""},
		{"https://git.example.com/?a=b", ""},
		{"https://", ""},
	} {
		got, err := CheckEndpoint(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("CheckEndpoint(%q) accepted", tc.in)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("CheckEndpoint(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func FuzzCheckEndpoint(f *testing.F) {
	for _, s := range []string{"https://git.example.com", "ssh://git@h:22/x", "http://u:p@h", "%zz", "https://h/?#"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := CheckEndpoint(s)
		if err != nil {
			return
		}
		if strings.Contains(got, "@") && !strings.HasPrefix(got, "ssh://") {
			t.Fatalf("accepted user info in %q", s)
		}
		if _, err := CheckEndpoint(got); err != nil {
			t.Fatalf("accepted %q but not its normal form %q: %v", s, got, err)
		}
	})
}

func FuzzParseARN(f *testing.F) {
	s := &Service{region: "us-east-1", accountID: "123456789012"}
	for _, a := range []string{
		"arn:aws:codeconnections:us-east-1:123456789012:connection/0b8e9a3c-0000-4000-8000-000000000001",
		"arn:aws:codestar-connections:us-east-1:123456789012:host/forge-1a2b3c4d",
		"arn:aws:codeconnections:eu-west-1:123456789012:connection/x",
		"arn:aws:s3:::bucket",
	} {
		f.Add(a)
	}
	f.Fuzz(func(t *testing.T, a string) {
		kind, id, err := s.parseARN(a, "", "ResourceArn")
		if err != nil {
			if _, ok := wire.AsError(err); !ok {
				t.Fatalf("not an API error: %v", err)
			}
			return
		}
		if (kind != kindConnection && kind != kindHost) || id == "" || strings.ContainsAny(id, "/:") {
			t.Fatalf("parseARN(%q) = %q, %q", a, kind, id)
		}
		if back := s.arn(ServiceCodeConnections, kind, id); !strings.HasSuffix(a, ":"+kind+"/"+id) || back == "" {
			t.Fatalf("parseARN(%q) does not round-trip: %s", a, back)
		}
	})
}
