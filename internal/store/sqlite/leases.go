package sqlite

import (
	"context"
	"fmt"
	"time"
)

// AcquireLease takes or renews the named lease for holder until now+ttl. One
// upsert: it inserts a free lease, and updates a taken one only when holder
// has it or it has expired; otherwise it changes no row, and that is the
// answer.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	var ok bool
	err := s.write(ctx, func(w *wtx) error {
		t := now()
		res, err := w.exec(qLeaseAcquire, name, holder, toMillis(t.Add(ttl)), toMillis(t))
		if err != nil {
			return err
		}
		n, err := rowsAffected(res)
		ok = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: acquire lease %q for %q: %w", name, holder, err)
	}
	return ok, nil
}

// ReleaseLease gives up holder's lease; a no-op when holder does not hold
// it.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	err := s.write(ctx, func(w *wtx) error {
		_, err := w.exec(qLeaseRelease, name, holder)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: release lease %q for %q: %w", name, holder, err)
	}
	return nil
}
