package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/pipelined/pipelined/internal/store"
	"github.com/pipelined/pipelined/internal/store/sqlite"
	"github.com/pipelined/pipelined/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	// paths remembers which file each store was opened on, for Reopen.
	var paths sync.Map // store.Store -> string
	storetest.Run(t, storetest.Harness{
		New: func(t *testing.T) store.Store {
			path := filepath.Join(t.TempDir(), "pipelined.db")
			s, err := sqlite.Open(context.Background(), path)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			paths.Store(store.Store(s), path)
			return s
		},
		Reopen: func(t *testing.T, s store.Store) store.Store {
			path, ok := paths.Load(s)
			if !ok {
				t.Fatal("Reopen of a store New did not return")
			}
			s2, err := sqlite.Open(context.Background(), path.(string))
			if err != nil {
				t.Fatalf("Open again: %v", err)
			}
			paths.Store(store.Store(s2), path)
			return s2
		},
		LegacyNonce: func(t *testing.T, s store.Store, jobID, nonce string) {
			path, ok := paths.Load(s)
			if !ok {
				t.Fatal("LegacyNonce on a store New did not return")
			}
			execRaw(t, path.(string), `UPDATE jobs SET nonce = ?, nonce_hash = '' WHERE id = ?`, nonce, jobID)
		},
	})
}

// execRaw runs one statement on the database file at path, on a
// connection of its own (as another process would).
func execRaw(t *testing.T, path, query string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(t.Context(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func TestOpenRejectsNonFilePaths(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file::memory:?cache=shared", "/tmp/a?b.db"} {
		s, err := sqlite.Open(t.Context(), path)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", path)
		}
	}
}

func TestOpenBadPath(t *testing.T) {
	// A directory cannot be a database file.
	_, err := sqlite.Open(t.Context(), t.TempDir())
	if err == nil {
		t.Fatal("Open of a directory succeeded")
	}
	if !strings.HasPrefix(err.Error(), "sqlite: open ") {
		t.Errorf("error %q lacks context", err)
	}
}

// TestSharedNotificationsNeedSameFile: handles on different files do not
// hear each other.
func TestSharedNotificationsNeedSameFile(t *testing.T) {
	a, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	ch, err := b.Listen(t.Context(), "wake")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Notify(t.Context(), "wake", "x"); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-ch:
		t.Fatalf("listener on another file got %q", v)
	default:
	}
}

// TestCloseEndsListeners: Close closes the handle's listener channels, and
// leaves other handles' alone.
func TestCloseEndsListeners(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.db")
	a, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	chA, err := a.Listen(t.Context(), "wake")
	if err != nil {
		t.Fatal(err)
	}
	chB, err := b.Listen(t.Context(), "wake")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, ok := <-chA; ok {
		t.Fatal("listener of a closed store got a value")
	}
	if _, err := a.Listen(t.Context(), "wake"); err == nil {
		t.Error("Listen on a closed store succeeded")
	}
	if err := b.Notify(t.Context(), "wake", "x"); err != nil {
		t.Fatal(err)
	}
	if v := <-chB; v != "x" {
		t.Fatalf("other handle's listener got %q", v)
	}
}

// --- benchmarks ---

// benchDefinition is a pipeline declaration of a realistic size (~2.5KB).
var benchDefinition = []byte(`{"name":"bench","roleArn":"arn:aws:iam::123456789012:role/service-role","artifactStore":{"type":"S3","location":"bucket"},"stages":[` +
	strings.Repeat(`{"name":"Stage","actions":[{"name":"Action","actionTypeId":{"category":"Build","owner":"AWS","provider":"CodeBuild","version":"1"},"configuration":{"ProjectName":"project"},"inputArtifacts":[{"name":"src"}],"outputArtifacts":[{"name":"out"}],"runOrder":1}]},`, 8) +
	`{"name":"Last","actions":[]}],"version":1}`)

// fixtures holds one populated store per size, shared by the benchmarks of
// one run (populating 10,000 pipelines takes a few seconds).
var fixtures struct {
	sync.Mutex
	m    map[int]*sqlite.Store
	dirs []string
}

// TestMain removes the benchmark fixtures after the run.
func TestMain(m *testing.M) {
	code := m.Run()
	fixtures.Lock()
	for _, s := range fixtures.m {
		s.Close()
	}
	for _, dir := range fixtures.dirs {
		os.RemoveAll(dir)
	}
	fixtures.Unlock()
	os.Exit(code)
}

func fixture(b *testing.B, n int) *sqlite.Store {
	b.Helper()
	fixtures.Lock()
	defer fixtures.Unlock()
	if s := fixtures.m[n]; s != nil {
		return s
	}
	// Not b.TempDir: the fixture outlives the benchmark that made it.
	dir, err := os.MkdirTemp("", "pipelined-sqlite-bench-")
	if err != nil {
		b.Fatal(err)
	}
	fixtures.dirs = append(fixtures.dirs, dir)
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(dir, "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		p := store.Pipeline{Name: benchName(i), PipelineType: "V2", ExecutionMode: "QUEUED", Definition: benchDefinition}
		if err := s.CreatePipeline(ctx, p, []store.Tag{{Key: "team", Value: "x"}}); err != nil {
			b.Fatal(err)
		}
		// Every tenth pipeline has a few versions, as real ones do.
		if i%10 == 0 {
			for range 3 {
				if _, err := s.UpdatePipeline(ctx, p.Name, func(p store.Pipeline) (store.Pipeline, error) { return p, nil }); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	if fixtures.m == nil {
		fixtures.m = map[int]*sqlite.Store{}
	}
	fixtures.m[n] = s
	return s
}

func benchName(i int) string { return fmt.Sprintf("pipeline-%06d", i) }

var benchSizes = []int{10, 10000}

func BenchmarkGetPipeline(b *testing.B) {
	ctx := context.Background()
	for _, n := range benchSizes {
		s := fixture(b, n)
		b.Run(fmt.Sprintf("pipelines=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := s.GetPipeline(ctx, benchName(i%n), 0); err != nil {
					b.Fatal(err)
				}
				i += 7919 // a prime: visit the names out of order
			}
		})
		b.Run(fmt.Sprintf("pipelines=%d/parallel", n), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := s.GetPipeline(ctx, benchName(i%n), 0); err != nil {
						b.Error(err)
						return
					}
					i += 7919
				}
			})
		})
	}
}

func BenchmarkListPipelines(b *testing.B) {
	ctx := context.Background()
	const page = 100
	for _, n := range benchSizes {
		s := fixture(b, n)
		b.Run(fmt.Sprintf("pipelines=%d/page=%d", n, page), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				// Start at a different place each time, as paging clients do.
				after := ""
				if start := i % n; start > 0 {
					after = benchName(start)
				}
				ps, err := s.ListPipelines(ctx, after, page)
				if err != nil {
					b.Fatal(err)
				}
				if len(ps) == 0 && n > 1 && i%n < n-1 {
					b.Fatalf("empty page after %q", after)
				}
				i += 7919
			}
		})
	}
}

// BenchmarkUpdatePipeline measures the write path: one IMMEDIATE
// transaction that reads the latest version and inserts the next. The
// parallel variant shows how writers queue on the single write connection.
func BenchmarkUpdatePipeline(b *testing.B) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	const n = 100
	for i := range n {
		p := store.Pipeline{Name: benchName(i), PipelineType: "V2", ExecutionMode: "QUEUED", Definition: benchDefinition}
		if err := s.CreatePipeline(ctx, p, nil); err != nil {
			b.Fatal(err)
		}
	}
	same := func(p store.Pipeline) (store.Pipeline, error) { return p, nil }
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := s.UpdatePipeline(ctx, benchName(i%n), same); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(4) // more writers than cores: they must queue
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := s.UpdatePipeline(ctx, benchName(i%n), same); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	})
}

// The read cache never serves a page or pipeline older than the last write, through
// any handle on the file.
func TestReadCacheSeesEveryWrite(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cache.db")
	a, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	names := func(s *sqlite.Store) string {
		page, err := s.ListPipelines(ctx, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range page {
			out = append(out, fmt.Sprintf("%s@%d", p.Name, p.Version))
		}
		return strings.Join(out, ",")
	}
	create := func(s *sqlite.Store, name string) {
		if err := s.CreatePipeline(ctx, store.Pipeline{Name: name, PipelineType: "V1", ExecutionMode: "SUPERSEDED", Definition: []byte("{}")}, nil); err != nil {
			t.Fatal(err)
		}
	}
	create(a, "p1")
	if got := names(a); got != "p1@1" {
		t.Fatalf("list = %q", got)
	}
	names(a) // cached now
	create(b, "p2")
	if got := names(a); got != "p1@1,p2@1" {
		t.Fatalf("after a create through another handle: %q", got)
	}
	if _, err := a.UpdatePipeline(ctx, "p2", func(l store.Pipeline) (store.Pipeline, error) { return l, nil }); err != nil {
		t.Fatal(err)
	}
	if got := names(b); got != "p1@1,p2@2" {
		t.Fatalf("after an update: %q", got)
	}
	if err := b.DeletePipeline(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if got := names(a); got != "p2@2" {
		t.Fatalf("after a delete: %q", got)
	}
	// GetPipeline of the latest version follows updates through any handle.
	get := func(s *sqlite.Store) string {
		p, err := s.GetPipeline(ctx, "p2", 0)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%d:%s", p.Version, p.Definition)
	}
	if got := get(a); got != "2:{}" {
		t.Fatalf("get = %q", got)
	}
	if _, err := b.UpdatePipeline(ctx, "p2", func(l store.Pipeline) (store.Pipeline, error) {
		l.Definition = []byte(`{"v":3}`)
		return l, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := get(a); got != `3:{"v":3}` {
		t.Fatalf("get after update through another handle = %q", got)
	}
	mine, _ := a.GetPipeline(ctx, "p2", 0)
	mine.Definition[0] = 'X'
	if got := get(a); got != `3:{"v":3}` {
		t.Fatalf("cache shares definition memory with callers: %q", got)
	}
	// A caller changing its page does not change the cache.
	page, _ := a.ListPipelines(ctx, "", 10)
	page[0].Name = "mutated"
	if got := names(a); got != "p2@3" {
		t.Fatalf("cache shares memory with callers: %q", got)
	}
}

// benchStore opens a new, empty store for one benchmark.
func benchStore(b *testing.B) *sqlite.Store {
	s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkInPipeline: one engine transition (read the runtime, update an
// execution, put a job) in one IMMEDIATE transaction.
func BenchmarkInPipeline(b *testing.B) { storetest.BenchInPipeline(b, benchStore(b)) }

func BenchmarkClaimJobs(b *testing.B) { storetest.BenchClaimJobs(b, benchStore(b)) }

// TestDatabaseFilesAreOwnerOnly: the database file and its -wal and -shm
// files are created with mode 0600 whatever the umask allows, and a file
// created before with a wider mode is narrowed when opened.
func TestDatabaseFilesAreOwnerOnly(t *testing.T) {
	old := syscall.Umask(0o022) // the common default: would give 0644
	defer syscall.Umask(old)
	ctx := context.Background()
	check := func(path string) {
		t.Helper()
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatalf("%s: %v", filepath.Base(p), err)
			}
			if m := fi.Mode().Perm(); m != 0o600 {
				t.Errorf("%s has mode %v, want 0600", filepath.Base(p), m)
			}
		}
	}
	write := func(s *sqlite.Store) {
		t.Helper()
		if err := s.CreatePipeline(ctx, store.Pipeline{Name: "p", Definition: []byte(`{}`)}, nil); err != nil {
			t.Fatal(err)
		}
	}

	fresh := filepath.Join(t.TempDir(), "fresh.db")
	s, err := sqlite.Open(ctx, fresh)
	if err != nil {
		t.Fatal(err)
	}
	write(s)
	check(fresh)
	s.Close()

	wide := filepath.Join(t.TempDir(), "wide.db")
	s, err = sqlite.Open(ctx, wide)
	if err != nil {
		t.Fatal(err)
	}
	write(s)
	s.Close()
	for _, p := range []string{wide, wide + "-wal", wide + "-shm"} {
		if err := os.Chmod(p, 0o644); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	s, err = sqlite.Open(ctx, wide)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check(wide)
}
