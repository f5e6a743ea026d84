package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/pipelined/pipelined/internal/store"
)

// OIDC signing keys (store.SigningKeyStore): one row, id 1. Updated comes
// from the database clock.
//
// Each swap is one statement, safe across replicas under READ COMMITTED:
// two INSERT ... ON CONFLICT DO NOTHING of the first key set serialize on
// the primary key (the later one waits for the earlier to commit, then
// inserts nothing), and of two UPDATE ... WHERE version = prev the later
// one waits for the earlier's row lock and then re-checks its WHERE against
// the committed row, which no longer matches. Either way the loser gets no
// row back, which is store.ErrConflict.
const signingKeyCols = `version, doc, updated`

func scanSigningKeys(row pgx.Row) (store.SigningKeys, error) {
	var k store.SigningKeys
	if err := row.Scan(&k.Version, &k.Doc, &k.Updated); err != nil {
		return store.SigningKeys{}, err
	}
	k.Doc = blob(k.Doc)
	k.Updated = utc(k.Updated)
	return k, nil
}

// SigningKeys returns the stored key set.
func (s *Store) SigningKeys(ctx context.Context) (store.SigningKeys, error) {
	k, err := scanSigningKeys(s.pool.QueryRow(ctx, `SELECT `+signingKeyCols+` FROM signing_keys WHERE id = 1`))
	if err != nil {
		return k, fmt.Errorf("postgres: signing keys: %w", mapErr(err))
	}
	return k, nil
}

// SwapSigningKeys stores doc as version prev+1 if the stored version is
// prev (0: none stored).
func (s *Store) SwapSigningKeys(ctx context.Context, prev int64, doc []byte) (store.SigningKeys, error) {
	var row pgx.Row
	if prev == 0 {
		row = s.pool.QueryRow(ctx, `INSERT INTO signing_keys (id, version, doc, updated)
			VALUES (1, 1, $1, now())
			ON CONFLICT (id) DO NOTHING
			RETURNING `+signingKeyCols, blob(doc))
	} else {
		row = s.pool.QueryRow(ctx, `UPDATE signing_keys SET version = version + 1, doc = $1, updated = now()
			WHERE id = 1 AND version = $2
			RETURNING `+signingKeyCols, blob(doc), prev)
	}
	k, err := scanSigningKeys(row)
	if errors.Is(err, pgx.ErrNoRows) {
		// Not ErrNotFound (as mapErr would have it): no row changed
		// because the stored version is not prev.
		return store.SigningKeys{}, fmt.Errorf("postgres: swap signing keys from version %d: %w", prev, store.ErrConflict)
	}
	if err != nil {
		return store.SigningKeys{}, fmt.Errorf("postgres: swap signing keys from version %d: %w", prev, mapErr(err))
	}
	return k, nil
}
