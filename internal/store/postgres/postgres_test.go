package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pipelined/pipelined/internal/pgtest"
	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/store/storetest"
)

// open opens a Store on dsn, closed when the test ends.
func open(t testing.TB, dsn string) *Store {
	t.Helper()
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	var dsns sync.Map // *Store -> its DSN, for Reopen
	openOn := func(t *testing.T, dsn string) store.Store {
		t.Helper()
		s, err := Open(t.Context(), dsn)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		dsns.Store(s, dsn)
		return s // the suite closes it
	}
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) store.Store { return openOn(t, pgtest.DSN(t)) },
		Reopen: func(t *testing.T, s store.Store) store.Store {
			dsn, ok := dsns.Load(s)
			if !ok {
				t.Fatalf("Reopen: %T %p was not opened by New", s, s)
			}
			return openOn(t, dsn.(string))
		},
		LegacyNonce: func(t *testing.T, s store.Store, jobID, nonce string) {
			if _, err := s.(*Store).pool.Exec(t.Context(), `UPDATE jobs SET nonce = $1, nonce_hash = '' WHERE id = $2`, nonce, jobID); err != nil {
				t.Fatal(err)
			}
		},
	})
}

// TestMigrateConcurrently starts four replicas on one fresh schema at once:
// all must open, and every migration must be applied exactly once.
func TestMigrateConcurrently(t *testing.T) {
	dsn := pgtest.DSN(t)
	const replicas = 4
	stores := make([]*Store, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() { stores[i], errs[i] = Open(t.Context(), dsn) })
	}
	wg.Wait()
	for i, s := range stores {
		if errs[i] != nil {
			t.Errorf("replica %d: Open: %v", i, errs[i])
			continue
		}
		t.Cleanup(func() { _ = s.Close() })
	}
	if t.Failed() {
		return
	}

	files, err := migrations.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	var applied []int64
	rows, err := stores[0].pool.Query(t.Context(),
		`SELECT version_id FROM goose_db_version WHERE version_id > 0 ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	applied, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != len(files) {
		t.Errorf("goose_db_version has %v, want each of the %d migrations once", applied, len(files))
	}

	// And every replica works on the tables.
	for i, s := range stores {
		if err := s.CreatePipeline(t.Context(), store.Pipeline{Name: fmt.Sprintf("p%d", i), PipelineType: "V2", ExecutionMode: "QUEUED"}, nil); err != nil {
			t.Errorf("replica %d: CreatePipeline: %v", i, err)
		}
	}
}

func TestOpenWithoutSchema(t *testing.T) {
	dsn := pgtest.DSN(t)
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var schema string
	if err := conn.QueryRow(t.Context(), `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}

	s, err := Open(t.Context(), dsn)
	if err == nil {
		s.Close()
		t.Fatal("Open with a missing schema succeeded")
	}
	if !strings.Contains(err.Error(), "no schema") {
		t.Errorf("Open with a missing schema: %v, want it to say so", err)
	}
}

// TestUpdatePipelineAcrossReplicas runs concurrent read-modify-write loops
// on two replicas: every update must land, as its own version, with no gap.
func TestUpdatePipelineAcrossReplicas(t *testing.T) {
	dsn := pgtest.DSN(t)
	replicas := []*Store{open(t, dsn), open(t, dsn)}
	ctx := t.Context()
	if err := replicas[0].CreatePipeline(ctx, store.Pipeline{Name: "p", PipelineType: "V2", ExecutionMode: "QUEUED", Definition: []byte("0")}, nil); err != nil {
		t.Fatal(err)
	}

	const workers, updates = 6, 10
	var (
		wg        sync.WaitGroup
		conflicts sync.Map
	)
	for w := range workers {
		s := replicas[w%len(replicas)]
		wg.Go(func() {
			for range updates {
				for {
					_, err := s.UpdatePipeline(ctx, "p", func(latest store.Pipeline) (store.Pipeline, error) {
						n, err := strconv.Atoi(string(latest.Definition))
						if err != nil {
							return store.Pipeline{}, err
						}
						latest.Definition = []byte(strconv.Itoa(n + 1))
						return latest, nil
					})
					if errors.Is(err, store.ErrConflict) {
						v, _ := conflicts.LoadOrStore(w, new(int))
						*v.(*int)++
						continue
					}
					if err != nil {
						t.Errorf("UpdatePipeline: %v", err)
						return
					}
					break
				}
			}
		})
	}
	wg.Wait()

	latest, err := replicas[1].GetPipeline(ctx, "p", 0)
	if err != nil {
		t.Fatal(err)
	}
	const want = workers*updates + 1
	if latest.Version != want || string(latest.Definition) != strconv.Itoa(want-1) {
		t.Errorf("latest = version %d, definition %s; want version %d, definition %d", latest.Version, latest.Definition, want, want-1)
	}
	for v := 1; v <= want; v++ {
		p, err := replicas[0].GetPipeline(ctx, "p", v)
		if err != nil || string(p.Definition) != strconv.Itoa(v-1) {
			t.Errorf("version %d: %q, %v", v, p.Definition, err)
		}
	}
	n := 0
	conflicts.Range(func(_, v any) bool { n += *v.(*int); return true })
	t.Logf("%d updates, %d conflicts retried", workers*updates, n)
}

// TestUpdatePipelineRecreated checks that a pipeline deleted and re-created
// while fn runs is not mistaken for the one fn saw, though its version is
// again the one fn read.
func TestUpdatePipelineRecreated(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := open(t, dsn), open(t, dsn)
	ctx := t.Context()
	p := store.Pipeline{Name: "p", PipelineType: "V2", ExecutionMode: "QUEUED", Definition: []byte("old")}
	if err := a.CreatePipeline(ctx, p, nil); err != nil {
		t.Fatal(err)
	}
	_, err := a.UpdatePipeline(ctx, "p", func(latest store.Pipeline) (store.Pipeline, error) {
		if err := b.DeletePipeline(ctx, "p"); err != nil {
			return store.Pipeline{}, err
		}
		p.Definition = []byte("new")
		if err := b.CreatePipeline(ctx, p, nil); err != nil {
			return store.Pipeline{}, err
		}
		return latest, nil
	})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("UpdatePipeline across a re-create: %v, want ErrConflict", err)
	}
	got, err := b.GetPipeline(ctx, "p", 0)
	if err != nil || got.Version != 1 || string(got.Definition) != "new" {
		t.Errorf("after the conflict: %+v, %v; want the re-created version 1", got, err)
	}
}

// TestPipelineTagsResource checks where CreatePipeline puts a pipeline's
// tags and that DeletePipeline removes them: under
// store.PipelineResource(name), as store.go documents.
func TestPipelineTagsResource(t *testing.T) {
	s := open(t, pgtest.DSN(t))
	ctx := t.Context()
	p := store.Pipeline{Name: "p", PipelineType: "V2", ExecutionMode: "QUEUED"}
	if err := s.CreatePipeline(ctx, p, []store.Tag{{Key: "k", Value: "v"}, {Key: "a", Value: "1"}}); err != nil {
		t.Fatal(err)
	}
	tags, err := s.Tags(ctx, store.PipelineResource("p"))
	if err != nil || !slices.Equal(tags, []store.Tag{{Key: "a", Value: "1"}, {Key: "k", Value: "v"}}) {
		t.Fatalf("Tags(PipelineResource) = %v, %v", tags, err)
	}
	if err := s.DeletePipeline(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if tags, err := s.Tags(ctx, store.PipelineResource("p")); err != nil || len(tags) != 0 {
		t.Fatalf("Tags(PipelineResource) after delete = %v, %v", tags, err)
	}
}

// recv waits for the next payload on ch.
func recv(t *testing.T, ch <-chan string, timeout time.Duration) (string, bool) {
	t.Helper()
	select {
	case p, ok := <-ch:
		if !ok {
			t.Fatal("listen channel closed")
		}
		return p, true
	case <-time.After(timeout):
		return "", false
	}
}

// TestNotifyAcrossReplicas sends notifications through one Store to a
// listener on another and logs the latency.
func TestNotifyAcrossReplicas(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := open(t, dsn), open(t, dsn)
	ctx := t.Context()
	// Longer than PostgreSQL's 63-byte channel names: hashed.
	channel := "wake/" + strings.Repeat("x", 80)
	ch, err := b.Listen(ctx, channel)
	if err != nil {
		t.Fatal(err)
	}

	const n = 200
	lat := make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		if err := a.Notify(ctx, channel, strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
		p, ok := recv(t, ch, 5*time.Second)
		if !ok {
			t.Fatalf("notification %d did not arrive", i)
		}
		if p != strconv.Itoa(i) {
			t.Fatalf("got payload %q, want %d", p, i)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("Notify to Listen across replicas, %d notifications: p50 %v, p90 %v, p99 %v, max %v",
		n, lat[n/2], lat[n*9/10], lat[n*99/100], lat[n-1])
	if p50 := lat[n/2]; p50 > 100*time.Millisecond {
		t.Errorf("p50 latency %v, want milliseconds", p50)
	}
}

// TestListenerReconnects kills the listener's connection on the server and
// expects later notifications to arrive over a new one.
func TestListenerReconnects(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := open(t, dsn), open(t, dsn)
	ctx := t.Context()
	ch, err := b.Listen(ctx, "jobs")
	if err != nil {
		t.Fatal(err)
	}
	pid := b.lis.backendPID()
	if pid == 0 {
		t.Fatal("no listener connection after Listen")
	}
	var killed bool
	if err := a.pool.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, int32(pid)).Scan(&killed); err != nil || !killed {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, killed, err)
	}

	// Notifications sent while the connection is down are lost; keep
	// sending until one arrives over the new connection.
	deadline := time.Now().Add(15 * time.Second)
	for {
		if err := a.Notify(ctx, "jobs", "after"); err != nil {
			t.Fatal(err)
		}
		if p, ok := recv(t, ch, 100*time.Millisecond); ok {
			if p != "after" {
				t.Fatalf("payload %q, want after", p)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no notification arrived after the listener's connection was terminated")
		}
	}
	if now := b.lis.backendPID(); now == pid || now == 0 {
		t.Errorf("listener backend pid %d after reconnect, was %d", now, pid)
	}

	// A new subscription works on the new connection too.
	ch2, err := b.Listen(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Notify(ctx, "other", "x"); err != nil {
		t.Fatal(err)
	}
	if _, ok := recv(t, ch2, 5*time.Second); !ok {
		t.Error("notification on a channel subscribed after the reconnect did not arrive")
	}
}

// TestListenSchemasIsolated checks that stores in different schemas of one
// database do not hear each other, and that a subscription ends with its
// context (and its channel is UNLISTENed).
func TestListenSchemasIsolated(t *testing.T) {
	a, b := open(t, pgtest.DSN(t)), open(t, pgtest.DSN(t))
	ctx := t.Context()
	lctx, cancel := context.WithCancel(ctx)
	ch, err := b.Listen(lctx, "jobs")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Notify(ctx, "jobs", "other schema"); err != nil {
		t.Fatal(err)
	}
	if err := b.Notify(ctx, "jobs", "same schema"); err != nil {
		t.Fatal(err)
	}
	if p, ok := recv(t, ch, 5*time.Second); !ok || p != "same schema" {
		t.Fatalf("got %q (%v), want only the same schema's notification", p, ok)
	}

	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Error("notification after the subscription ended")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("listen channel not closed after its context ended")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.lis.mu.Lock()
		n := len(b.lis.listening)
		b.lis.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still listening on %d channels after the only subscription ended", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestListenerHealthCheck makes the listener time out its wait (and ping)
// many times: notifications must still arrive.
func TestListenerHealthCheck(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := open(t, dsn), open(t, dsn)
	b.lis.health = 5 * time.Millisecond // before the first Listen starts the goroutine
	ch, err := b.Listen(t.Context(), "c")
	if err != nil {
		t.Fatal(err)
	}
	pid := b.lis.backendPID()
	for i := range 5 {
		time.Sleep(30 * time.Millisecond)
		if err := a.Notify(t.Context(), "c", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
		if p, ok := recv(t, ch, 5*time.Second); !ok || p != strconv.Itoa(i) {
			t.Fatalf("got %q (%v), want %d", p, ok, i)
		}
	}
	if now := b.lis.backendPID(); now != pid {
		t.Errorf("listener reconnected (pid %d, then %d): timeouts must not drop the connection", pid, now)
	}
}

// TestListenUnreachable: Listen reports a listener connection that cannot
// be made, instead of waiting for ever. No server needed.
func TestListenUnreachable(t *testing.T) {
	cfg, err := pgx.ParseConfig("postgres://nobody@127.0.0.1:1/none?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	l := newListener(cfg)
	defer l.close()
	if _, err := l.subscribe(t.Context(), "c"); err == nil {
		t.Fatal("subscribe without a server succeeded")
	}
	l.mu.Lock()
	n := len(l.subs)
	l.mu.Unlock()
	if n != 0 {
		t.Errorf("%d channels subscribed after the failed subscribe", n)
	}
}

func TestBackoff(t *testing.T) {
	for failures := 1; failures < 100; failures++ {
		d := backoff(failures)
		lo := min(backoffMin<<min(failures-1, 20), backoffMax) / 2
		if d < lo || d > backoffMax {
			t.Errorf("backoff(%d) = %v, want in [%v, %v]", failures, d, lo, backoffMax)
		}
	}
}

func TestChannelNames(t *testing.T) {
	s := &Store{schema: "pgtest_1"}
	for _, tc := range []struct{ channel, want string }{
		{"jobs", "pgtest_1:jobs"},
		{"a:b", "pgtest_1:a:b"},
		{"", "pgtest_1:"},
	} {
		if got := s.channel(tc.channel); got != tc.want {
			t.Errorf("channel(%q) = %q, want %q", tc.channel, got, tc.want)
		}
	}
	seen := map[string]bool{}
	for _, c := range []string{strings.Repeat("x", 60), strings.Repeat("x", 61), "nul\x00", "bad\xff"} {
		got := s.channel(c)
		if len(got) > maxChannelLen || !strings.HasPrefix(got, ":") || seen[got] {
			t.Errorf("channel(%q) = %q, want a unique hashed name of at most %d bytes", c, got, maxChannelLen)
		}
		seen[got] = true
	}
	if a, b := (&Store{schema: "a:b"}).channel("c"), (&Store{schema: "a"}).channel("b:c"); a == b {
		t.Errorf("schema a:b channel c and schema a channel b:c share the name %q", a)
	}
}

func TestListenClosedStore(t *testing.T) {
	s := open(t, pgtest.DSN(t))
	ch, err := s.Listen(t.Context(), "c")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-ch; ok {
		t.Error("notification on a closed store")
	}
	if _, err := s.Listen(t.Context(), "c"); err == nil {
		t.Error("Listen on a closed store succeeded")
	}
}

// seedPipelines inserts n pipelines (version 1, a 2 KiB definition) with
// one statement per table: going through CreatePipeline would make the
// benchmarks' setup take longer than the benchmarks.
func seedPipelines(tb testing.TB, s *Store, n int) {
	tb.Helper()
	def := []byte(`{"pipeline":{"stages":[` + strings.Repeat(`{"name":"stage","actions":[]},`, 70) + `{}]}}`)
	ctx := context.Background()
	if _, err := s.pool.Exec(ctx, `INSERT INTO pipeline_heads (name, version, pipeline_type, execution_mode, created, updated)
		SELECT format('pipeline-%s', lpad(i::text, 6, '0')), 1, 'V2', 'QUEUED', now(), now()
		FROM generate_series(1, $1) AS i`, n); err != nil {
		tb.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO pipelines (`+pipelineCols+`)
		SELECT name, version, pipeline_type, execution_mode, created, updated, $1 FROM pipeline_heads`, def); err != nil {
		tb.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `ANALYZE pipeline_heads, pipelines`); err != nil {
		tb.Fatal(err)
	}
}

func BenchmarkGetPipeline(b *testing.B) {
	for _, n := range []int{10, 10_000} {
		b.Run(fmt.Sprintf("pipelines=%d", n), func(b *testing.B) {
			s := open(b, pgtest.DSN(b))
			seedPipelines(b, s, n)
			ctx := b.Context()
			i := 0
			for b.Loop() {
				i++
				name := fmt.Sprintf("pipeline-%06d", i%n+1)
				if _, err := s.GetPipeline(ctx, name, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkListPipelines(b *testing.B) {
	const n, page = 10_000, 100
	s := open(b, pgtest.DSN(b))
	seedPipelines(b, s, n)
	ctx := b.Context()
	after := ""
	for b.Loop() {
		ps, err := s.ListPipelines(ctx, after, page)
		if err != nil {
			b.Fatal(err)
		}
		// Walk the pages, starting over at the end.
		after = ""
		if len(ps) == page {
			after = ps[page-1].Name
		}
	}
}

// BenchmarkInPipeline: one engine transition (lock the pipeline, read the
// runtime, update an execution, put a job) in one transaction.
func BenchmarkInPipeline(b *testing.B) { storetest.BenchInPipeline(b, open(b, pgtest.DSN(b))) }

func BenchmarkClaimJobs(b *testing.B) { storetest.BenchClaimJobs(b, open(b, pgtest.DSN(b))) }
