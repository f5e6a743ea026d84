package admin

import (
	"context"
	"errors"
	"net/http"

	"github.com/pipelined/pipelined/internal/connections"
)

// SetConnectionCredentialsInput sets a connection's credentials: the
// connection's ARN (codeconnections or codestar-connections) and the
// credentials (kind token, basic, ssh or none).
type SetConnectionCredentialsInput struct {
	ConnectionArn string                  `json:"connectionArn"`
	Credentials   connections.Credentials `json:"credentials"`
}

// ConnectionOutput describes a connection after its credentials were set
// (never the credentials).
type ConnectionOutput struct {
	ConnectionArn    string `json:"connectionArn"`
	ConnectionName   string `json:"connectionName"`
	ConnectionStatus string `json:"connectionStatus"`
	ProviderType     string `json:"providerType"`
	CredentialKind   string `json:"credentialKind"`
}

func (h *Handler) setConnectionCredentials(ctx context.Context, _ *http.Request, _ []string, body []byte) (int, any, error) {
	if h.conns == nil {
		return 0, nil, errors.New("admin: no connections service configured (admin.Config.Connections)")
	}
	var in SetConnectionCredentialsInput
	if err := decodeBody(body, &in); err != nil {
		return 0, nil, err
	}
	c, err := h.conns.SetCredentials(ctx, in.ConnectionArn, in.Credentials)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, ConnectionOutput{
		ConnectionArn: c.ConnectionArn, ConnectionName: c.ConnectionName, ConnectionStatus: string(c.ConnectionStatus),
		ProviderType: string(c.ProviderType), CredentialKind: in.Credentials.Kind,
	}, nil
}
