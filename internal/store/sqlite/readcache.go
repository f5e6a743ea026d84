package sqlite

import (
	"sync"
	"sync/atomic"

	"github.com/pipelined/pipelined/internal/store"
)

// readCache keeps recent ListPipelines pages and GetPipeline results of one
// database file.
//
// Why: a list page costs ~17µs of query plus ~1.6µs a row in the pure-Go
// SQLite, half of ListPipelines' server time, and reading a definition is
// the largest part of GetPipeline's that the server controls, for data that
// changes only when pipelines are written. A database file belongs to one process and all
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
type readCache struct {
	gen   atomic.Uint64
	mu    sync.Mutex
	pages map[listKey]listPage
	rows  int // rows held by pages, to bound memory
	defs  map[defKey]defEntry
	bytes int // definition bytes held by defs, to bound memory
}

type defKey struct {
	name    string
	version int // 0: the latest
}

type defEntry struct {
	gen uint64
	p   store.Pipeline
}

// readCacheMaxBytes bounds the definition bytes held; past it the
// definitions start over.
const readCacheMaxBytes = 32 << 20

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
func (c *readCache) changed() { c.gen.Add(1) }

// generation is read before a query whose result may be stored.
func (c *readCache) generation() uint64 { return c.gen.Load() }

// get returns a copy of a current page.
func (c *readCache) get(k listKey) ([]store.Pipeline, bool) {
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
func (c *readCache) put(k listKey, g uint64, rows []store.Pipeline) {
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

// getPipeline returns a current cached pipeline, with a copy of its
// definition (callers own what they get).
func (c *readCache) getPipeline(k defKey) (store.Pipeline, bool) {
	g := c.gen.Load()
	c.mu.Lock()
	e, ok := c.defs[k]
	c.mu.Unlock()
	if !ok || e.gen != g {
		return store.Pipeline{}, false
	}
	p := e.p
	p.Definition = append([]byte(nil), e.p.Definition...)
	return p, true
}

// putPipeline stores a pipeline read at generation g (a copy).
func (c *readCache) putPipeline(k defKey, g uint64, p store.Pipeline) {
	p.Definition = append([]byte(nil), p.Definition...)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.defs == nil || c.bytes+len(p.Definition) > readCacheMaxBytes {
		c.defs, c.bytes = make(map[defKey]defEntry), 0
	}
	if old, ok := c.defs[k]; ok {
		c.bytes -= len(old.p.Definition)
	}
	c.defs[k] = defEntry{gen: g, p: p}
	c.bytes += len(p.Definition)
}
