package imap

import (
	"fmt"
	"testing"
)

func TestHeaderCacheEvictsLeastRecentlyUsed(t *testing.T) {
	c := newHeaderCache(10 * (100 + 2 + 64))
	hdr := make([]byte, 100)
	for i := 0; i < 10; i++ {
		c.put(fmt.Sprintf("k%d", i), hdr)
	}
	if _, ok := c.get("k0"); !ok { // k0 is now the most recently used
		t.Fatal("k0 missing before the cache was full")
	}
	c.put("kA", hdr)
	if _, ok := c.get("k1"); ok {
		t.Error("k1, the least recently used, was kept")
	}
	for _, k := range []string{"k0", "k2", "k9", "kA"} {
		if _, ok := c.get(k); !ok {
			t.Errorf("%s evicted", k)
		}
	}
	if c.size > c.max {
		t.Errorf("size %d over %d", c.size, c.max)
	}
	// The cache keeps its own copy.
	mine := []byte("Subject: x\r\n\r\n")
	c.put("copy", mine)
	mine[0] = 'X'
	if got, _ := c.get("copy"); got[0] != 'S' {
		t.Error("cache shares the caller's buffer")
	}
	off := newHeaderCache(-1)
	off.put("k", hdr)
	if _, ok := off.get("k"); ok {
		t.Error("a disabled cache kept an entry")
	}
}
