package postgres

import (
	"context"
	"fmt"
	"time"
)

// AcquireLease takes or renews the named lease for holder until now+ttl,
// where now is the database clock, so replicas with skewed clocks agree on
// who holds what. One upsert: it inserts a free lease, and updates a taken
// one only when holder has it or it has expired; otherwise it changes no
// row, and that is the answer. Concurrent upserts of one name serialize on
// its row (or its primary key entry), so two holders never both win.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO leases (name, holder, expires_at)
		VALUES ($1, $2, now() + $3 * interval '1 microsecond')
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leases.holder = excluded.holder OR leases.expires_at <= now()`,
		name, holder, micros(ttl))
	if err != nil {
		return false, fmt.Errorf("postgres: acquire lease %q for %q: %w", name, holder, mapErr(err))
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseLease gives up holder's lease; a no-op when holder does not hold
// it.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM leases WHERE name = $1 AND holder = $2`, name, holder); err != nil {
		return fmt.Errorf("postgres: release lease %q for %q: %w", name, holder, mapErr(err))
	}
	return nil
}
