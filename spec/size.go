package spec

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseSize reads a size such as "500M", "2G", "1024" (bytes), "10K"; units
// are powers of 1024, as mail quotas are usually meant.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	t = strings.TrimSuffix(t, "B")
	if t == "" {
		return 0, fmt.Errorf("size %q is empty", s)
	}
	mult := int64(1)
	switch t[len(t)-1] {
	case 'K':
		mult = 1 << 10
	case 'M':
		mult = 1 << 20
	case 'G':
		mult = 1 << 30
	case 'T':
		mult = 1 << 40
	}
	if mult > 1 {
		t = t[:len(t)-1]
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q is not a number with an optional K, M, G or T suffix", s)
	}
	return n * mult, nil
}
