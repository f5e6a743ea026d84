package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"sync"
)

// maxCachedKeys bounds the signing-key cache. One entry serves one secret
// for one day, so this is ample for a server with many clients; past it an
// arbitrary entry is dropped, which costs at worst one re-derivation.
const maxCachedKeys = 4096

type keyCacheKey struct{ secret, date, region, service string }

// keyCache remembers derived signing keys. Deriving one takes four HMACs, as
// much again as checking the signature itself, and the key changes only once
// a day per secret.
type keyCache struct {
	mu   sync.RWMutex
	keys map[keyCacheKey][]byte
}

// get returns the signing key for the scope. The slice is shared: callers
// must not modify it.
func (c *keyCache) get(secret, date, region, service string) []byte {
	k := keyCacheKey{secret, date, region, service}
	c.mu.RLock()
	key, ok := c.keys[k]
	c.mu.RUnlock()
	if ok {
		return key
	}

	key = deriveSigningKey(secret, date, region, service)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys == nil {
		c.keys = make(map[keyCacheKey][]byte)
	}
	if len(c.keys) >= maxCachedKeys {
		for old := range c.keys { // map order is arbitrary: a random eviction
			delete(c.keys, old)
			break
		}
	}
	c.keys[k] = key
	return key
}

// deriveSigningKey computes
// HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request").
func deriveSigningKey(secret, date, region, service string) []byte {
	key := hmacSHA256([]byte("AWS4"+secret), date)
	key = hmacSHA256(key, region)
	key = hmacSHA256(key, service)
	return hmacSHA256(key, terminator)
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}
