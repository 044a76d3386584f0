package keys

import (
	"container/list"
	"crypto/cipher"
	"sync"
	"time"
)

// cmkEntry is a CMK ready for use: its state and one AEAD per version. It is
// immutable once built, so readers share it without locking. Only AEADs are
// kept, never raw material: the material slice is zeroed right after the
// cipher is built.
type cmkEntry struct {
	account string
	rec     keyRecord // Versions[i].Material is the root-sealed form
	aeads   map[string]cipher.AEAD
	loaded  time.Time
}

// keyCache is a bounded LRU of unwrapped CMKs, so that GetSecretValue costs
// neither a store read nor a root-key unwrap per call. Entries also expire
// after ttl, as a backstop should a change notification be lost.
type keyCache struct {
	mu  sync.Mutex
	max int
	ttl time.Duration
	// gen increases on every invalidation; a loader that read the store
	// before an invalidation must not insert what it read.
	gen uint64
	ll  *list.List
	m   map[string]*list.Element
}

func newKeyCache(max int, ttl time.Duration) *keyCache {
	return &keyCache{max: max, ttl: ttl, ll: list.New(), m: make(map[string]*list.Element)}
}

func cacheKey(account, keyID string) string { return account + "\x00" + keyID }

// get returns the cached entry (nil when absent or expired) and the
// generation to pass to put.
func (c *keyCache) get(account, keyID string, now time.Time) (*cmkEntry, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[cacheKey(account, keyID)]
	if !ok {
		return nil, c.gen
	}
	e := el.Value.(*cmkEntry)
	if now.Sub(e.loaded) > c.ttl || now.Before(e.loaded) {
		c.ll.Remove(el)
		delete(c.m, cacheKey(account, keyID))
		return nil, c.gen
	}
	c.ll.MoveToFront(el)
	return e, c.gen
}

func (c *keyCache) put(e *cmkEntry, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max <= 0 || gen != c.gen {
		return
	}
	k := cacheKey(e.account, e.rec.KeyID)
	if el, ok := c.m[k]; ok {
		el.Value = e
		c.ll.MoveToFront(el)
		return
	}
	c.m[k] = c.ll.PushFront(e)
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		oe := old.Value.(*cmkEntry)
		delete(c.m, cacheKey(oe.account, oe.rec.KeyID))
	}
}

func (c *keyCache) invalidate(account, keyID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if el, ok := c.m[cacheKey(account, keyID)]; ok {
		c.ll.Remove(el)
		delete(c.m, cacheKey(account, keyID))
	}
}

func (c *keyCache) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.ll.Init()
	clear(c.m)
}
