package sqlite

import (
	"sync"
	"sync/atomic"

	"github.com/pipelined/pipelined/internal/store"
)

// listCache keeps recent ListPipelines pages of one database file.
//
// Why: a list page costs ~17µs of query plus ~1.6µs a row in the pure-Go
// SQLite, half of ListPipelines' server time, for data that changes only
// when pipelines are written. A database file belongs to one process and all
// of its writes go through Store.write, so a generation counter bumped after
// every write transaction, shared by every handle on the file (it lives in
// the hub), tells exactly when a cached page may be stale. (PostgreSQL, with
// replicas writing behind each other's backs, has no such cache.)
//
// Correctness: a reader reads the generation before it queries and tags the
// page with it. A write that commits during the query bumps the generation
// afterwards, so such a page is never served again; a page served in the
// moment between a commit and its bump answers a read that overlapped the
// write, which may see the state before it.
type listCache struct {
	gen   atomic.Uint64
	mu    sync.Mutex
	pages map[listKey]listPage
	rows  int // rows held, to bound memory
}

type listKey struct {
	after string
	limit int
}

type listPage struct {
	gen  uint64
	rows []store.Pipeline
}

// listCacheMaxRows bounds the rows held (about 150 bytes each); past it the
// cache starts over.
const listCacheMaxRows = 20000

// changed records a write: every cached page is stale from now on.
func (c *listCache) changed() { c.gen.Add(1) }

// generation is read before a query whose result may be stored.
func (c *listCache) generation() uint64 { return c.gen.Load() }

// get returns a copy of a current page.
func (c *listCache) get(k listKey) ([]store.Pipeline, bool) {
	g := c.gen.Load()
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pages[k]
	if !ok || p.gen != g {
		return nil, false
	}
	return append([]store.Pipeline(nil), p.rows...), true
}

// put stores a page read at generation g (a copy; the caller keeps its own).
func (c *listCache) put(k listKey, g uint64, rows []store.Pipeline) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pages == nil || c.rows+len(rows) > listCacheMaxRows {
		c.pages, c.rows = make(map[listKey]listPage), 0
	}
	if old, ok := c.pages[k]; ok {
		c.rows -= len(old.rows)
	}
	c.pages[k] = listPage{gen: g, rows: append([]store.Pipeline(nil), rows...)}
	c.rows += len(rows)
}
