package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxChannelLen is PostgreSQL's identifier limit (NAMEDATALEN-1 bytes):
// pg_notify rejects longer channel names and LISTEN truncates them.
const maxChannelLen = 63

// errClosed is returned by Listen on a closed Store.
var errClosed = errors.New("store closed")

// Notify wakes every listener of channel on every replica using this
// schema, with pg_notify. PostgreSQL delivers it when (and only if) the
// transaction commits; here that is at once. Payloads are limited to 8000
// bytes by PostgreSQL.
func (s *Store) Notify(ctx context.Context, channel, payload string) error {
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, s.channel(channel), payload); err != nil {
		return fmt.Errorf("postgres: notify %q: %w", channel, mapErr(err))
	}
	return nil
}

// Listen subscribes to channel until ctx ends or the Store is closed; then
// the returned channel is closed. When Listen returns, the subscription is
// in effect on the server: a Notify from any replica that commits after it
// is delivered, unless dropped.
//
// All subscriptions of a Store share one dedicated connection that LISTENs
// on the channels in use. Notifications are dropped for a subscriber whose
// buffer is full, and all of them are lost while that connection is down
// (it reconnects with backoff and LISTENs again): as the store contract
// says, the returned channel is a hint, and listeners must also poll.
//
// Listen fails when the listening connection cannot be established.
func (s *Store) Listen(ctx context.Context, channel string) (<-chan string, error) {
	ch, err := s.lis.subscribe(ctx, s.channel(channel))
	if err != nil {
		return nil, fmt.Errorf("postgres: listen %q: %w", channel, err)
	}
	return ch, nil
}

// channel maps a store channel to a PostgreSQL channel name. NOTIFY is
// database-wide, so the name is qualified with the schema: deployments (and
// tests) in different schemas of one database do not hear each other.
// "<schema>:<channel>" is used as is when it is a valid name of at most 63
// bytes; otherwise (and when the schema itself contains ':', which would
// make the split ambiguous) the name is ":" and a hash of both, which the
// readable form can never equal, since a schema name is never empty.
func (s *Store) channel(channel string) string {
	name := s.schema + ":" + channel
	if len(name) <= maxChannelLen && !strings.Contains(s.schema, ":") &&
		utf8.ValidString(name) && !strings.ContainsRune(name, 0) {
		return name
	}
	sum := sha256.Sum256([]byte(s.schema + "\x00" + channel))
	return ":" + hex.EncodeToString(sum[:20])
}
