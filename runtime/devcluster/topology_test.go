package devcluster

import (
	"net/netip"
	"testing"
)

func TestHCLQuote(t *testing.T) {
	for in, want := range map[string]string{
		`/tmp/dev`:          `"/tmp/dev"`,
		`a "b" \c`:          `"a \"b\" \\c"`,
		"${x} %{y} $z %":    `"$${x} %%{y} $z %"`,
		"tab\there\nnl\x01": `"tab\there\nnl\u0001"`,
	} {
		if got := hclQuote(in); got != want {
			t.Errorf("hclQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestLayout(t *testing.T) {
	l, err := newLayout(netip.MustParseAddr("127.0.0.100"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Addr]bool{}
	all := []netip.Addr{l.balancerNode, l.balancerVIP, l.directoryVIP, l.directoryNode}
	all = append(all, l.frontends[:]...)
	all = append(all, l.instanceVIPs[:]...)
	all = append(all, l.instanceNodes[:]...)
	for _, a := range all {
		if seen[a] || a.Compare(netip.MustParseAddr("127.0.0.100")) < 0 || a.Compare(netip.MustParseAddr("127.0.0.109")) > 0 {
			t.Errorf("address %s repeated or outside 127.0.0.100-109", a)
		}
		seen[a] = true
	}
	if len(all) != AddrCount {
		t.Errorf("%d roles for %d addresses", len(all), AddrCount)
	}
	for _, bad := range []string{"10.0.0.1", "127.0.0.0", "127.255.255.250", "::1"} {
		if _, err := newLayout(netip.MustParseAddr(bad)); err == nil {
			t.Errorf("base %s accepted", bad)
		}
	}
}
