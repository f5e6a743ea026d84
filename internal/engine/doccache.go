package engine

import (
	"bytes"
	"sync"
)

// Decoded-document caches. Decoding JSON inside a transition is work done
// while the pipeline's lock (and on SQLite the one writer) is held, so it
// bounds how many transitions a second the store commits. The documents a
// transition writes are the ones the next transition of the same work reads:
// a job completion reads the execution its queueing wrote, and the job doc
// it created. Both caches key on the stored bytes: an entry is used only
// when the bytes the transaction just read equal the bytes it was decoded
// from, so a write by another replica, or by a transaction whose result was
// not cached, is never missed (it costs a decode, not a stale read).

// execCache keeps executions written by committed transitions. An entry is
// taken out (removed) by the transition that uses it, which mutates it; the
// transition puts it back, with its new bytes, only once it committed. A
// failed transition therefore leaves no mutated entry behind.
type execCache struct {
	mu sync.Mutex
	m  map[string]cachedExec
}

type cachedExec struct {
	doc []byte
	x   *Execution
}

// execCacheMax bounds the cache; past it, it starts over.
const execCacheMax = 4096

// take returns the cached execution decoded from doc, removing it.
func (c *execCache) take(id string, doc []byte) *Execution {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok {
		return nil
	}
	delete(c.m, id)
	if !bytes.Equal(e.doc, doc) {
		return nil
	}
	return e.x
}

// put caches an execution and the bytes it was stored as. x must no longer
// be used by the caller.
func (c *execCache) put(id string, doc []byte, x *Execution) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= execCacheMax {
		c.m = make(map[string]cachedExec)
	}
	c.m[id] = cachedExec{doc: doc, x: x}
}

// jobDocCache keeps decoded job documents. A job's document never changes
// after it is created, and the engine only reads it, so entries are shared.
type jobDocCache struct {
	mu sync.Mutex
	m  map[string]cachedJobDoc
}

type cachedJobDoc struct {
	doc []byte
	d   *JobDoc
}

func (c *jobDocCache) get(id string, doc []byte) *JobDoc {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[id]; ok && bytes.Equal(e.doc, doc) {
		return e.d
	}
	return nil
}

func (c *jobDocCache) put(id string, doc []byte, d *JobDoc) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= execCacheMax {
		c.m = make(map[string]cachedJobDoc)
	}
	c.m[id] = cachedJobDoc{doc: doc, d: d}
}
