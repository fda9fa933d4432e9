package imap

import (
	"container/list"
	"sync"
)

// headerCache keeps the headers that FETCH read, by the message's maildir
// key. A key always names the same content (flags live in the file name's
// suffix, and keys are never reused), so an entry is never stale; it only
// ages out, least recently used first, once the cache holds max bytes. It
// spares a FETCH of envelopes or headers over a large mailbox (what a
// client does to list it) one open and read per message.
type headerCache struct {
	mu    sync.Mutex
	max   int
	size  int
	order *list.List // of *headerEntry, most recently used first
	byKey map[string]*list.Element
}

type headerEntry struct {
	key string
	hdr []byte
}

// newHeaderCache returns a cache of max bytes; with max <= 0 it keeps
// nothing.
func newHeaderCache(max int) *headerCache {
	return &headerCache{max: max, order: list.New(), byKey: map[string]*list.Element{}}
}

// get returns the cached header, which the caller must not change.
func (c *headerCache) get(key string) ([]byte, bool) {
	if key == "" {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[key]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*headerEntry).hdr, true
}

// put stores a copy of hdr.
func (c *headerCache) put(key string, hdr []byte) {
	cost := len(hdr) + len(key) + 64
	if key == "" || cost > c.max/8 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byKey[key]; ok {
		return
	}
	c.byKey[key] = c.order.PushFront(&headerEntry{key: key, hdr: append([]byte(nil), hdr...)})
	c.size += cost
	for c.size > c.max {
		last := c.order.Back()
		e := last.Value.(*headerEntry)
		c.order.Remove(last)
		delete(c.byKey, e.key)
		c.size -= len(e.hdr) + len(e.key) + 64
	}
}
