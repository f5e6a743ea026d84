package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/pipelined/pipelined/internal/store"
)

// OIDC signing keys (store.SigningKeyStore): one row, id 1. The queries are
// not in writeQueries: the key set is written once per rotation (hours
// apart), so the writes run unprepared; the read is prepared on first use
// on the read pool. Writes queue on the single write connection (and, across
// handles or processes, on BEGIN IMMEDIATE), so the version check and the
// write below cannot interleave with another swap.
const (
	qSigningKeys = `SELECT version, doc, updated FROM signing_keys WHERE id = 1`
	// qSigningKeysInsert changes no row when a key set is already stored.
	qSigningKeysInsert = `INSERT INTO signing_keys (id, version, doc, updated) VALUES (1, 1, ?, ?)
		ON CONFLICT (id) DO NOTHING`
	// qSigningKeysSwap changes no row when another writer moved the
	// version first.
	qSigningKeysSwap = `UPDATE signing_keys SET version = version + 1, doc = ?, updated = ?
		WHERE id = 1 AND version = ?`
)

// SigningKeys returns the stored key set.
func (s *Store) SigningKeys(ctx context.Context) (store.SigningKeys, error) {
	var (
		k       store.SigningKeys
		updated int64
	)
	if err := s.queryRow(ctx, qSigningKeys).Scan(&k.Version, &k.Doc, &updated); err != nil {
		return store.SigningKeys{}, fmt.Errorf("sqlite: signing keys: %w", notFound(err))
	}
	k.Doc = blob(k.Doc)
	k.Updated = fromMillis(updated)
	return k, nil
}

// SwapSigningKeys stores doc as version prev+1 if the stored version is
// prev (0: none stored).
func (s *Store) SwapSigningKeys(ctx context.Context, prev int64, doc []byte) (store.SigningKeys, error) {
	k := store.SigningKeys{Version: prev + 1, Doc: blob(doc), Updated: now()}
	err := s.write(ctx, func(w *wtx) error {
		var (
			res sql.Result
			err error
		)
		if prev == 0 {
			res, err = w.exec(qSigningKeysInsert, k.Doc, toMillis(k.Updated))
		} else {
			res, err = w.exec(qSigningKeysSwap, k.Doc, toMillis(k.Updated), prev)
		}
		if err != nil {
			return err
		}
		if n, err := rowsAffected(res); err != nil {
			return err
		} else if n != 1 {
			return store.ErrConflict
		}
		return nil
	})
	if err != nil {
		return store.SigningKeys{}, fmt.Errorf("sqlite: swap signing keys from version %d: %w", prev, err)
	}
	return k, nil
}
