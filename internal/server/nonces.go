package server

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pipelined/pipelined/internal/jobnonce"
	"github.com/pipelined/pipelined/internal/store"
)

// hashLegacyNonces hashes the clear job nonces a store from before schema
// version 6 kept (migration 00006 cannot: the keyed hash needs the master
// key), before the server serves: from then on the database holds no
// nonce in clear. Third-party jobs keep a sealed copy, as new ones do.
// Once done it finds nothing, on an index that is empty, so every later
// start pays nothing for it.
func hashLegacyNonces(ctx context.Context, st store.Store, nonces *jobnonce.Keeper, log *slog.Logger) error {
	n, err := st.HashLegacyNonces(ctx, func(j store.Job, nonce string) string {
		return nonces.Store(j.ID, nonce, j.ActionType.Owner == "ThirdParty")
	})
	if err != nil {
		return fmt.Errorf("job nonces: %w", err)
	}
	if n > 0 {
		log.Info("replaced clear job nonces with their keyed hashes", "jobs", n)
	}
	return nil
}
