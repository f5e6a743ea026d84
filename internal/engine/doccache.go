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

// docCache keeps decoded documents by id, each with the bytes it was
// decoded from (or encoded to).
//
// Executions are taken out (removed) by the transition that uses one,
// which mutates it; the transition puts it back, with its new bytes, only
// once it committed, so a failed transition leaves no mutated entry behind.
// Job documents never change after a job is created and the engine only
// reads them, so their entries are shared (get).
type docCache[T any] struct {
	mu sync.Mutex
	m  map[string]cachedDoc[T]
}

type cachedDoc[T any] struct {
	doc []byte
	v   *T
}

type (
	execCache   = docCache[Execution]
	jobDocCache = docCache[JobDoc]
)

// docCacheMax bounds a cache; past it, it starts over.
const docCacheMax = 4096

// get returns the entry decoded from doc (nil if none).
func (c *docCache[T]) get(id string, doc []byte) *T { return c.lookup(id, doc, false) }

// take is get that also removes the entry, whatever it held.
func (c *docCache[T]) take(id string, doc []byte) *T { return c.lookup(id, doc, true) }

func (c *docCache[T]) lookup(id string, doc []byte, remove bool) *T {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok {
		return nil
	}
	if remove {
		delete(c.m, id)
	}
	if !bytes.Equal(e.doc, doc) {
		return nil
	}
	return e.v
}

// put caches v as decoded from doc. v must no longer be changed by the
// caller.
func (c *docCache[T]) put(id string, doc []byte, v *T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= docCacheMax {
		c.m = make(map[string]cachedDoc[T])
	}
	c.m[id] = cachedDoc[T]{doc: doc, v: v}
}
