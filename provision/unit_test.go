package provision

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mailfleet/mailfleet/spec"
)

func TestNormalizeAddress(t *testing.T) {
	good := map[string]string{
		"Alice@Example.COM":              "alice@example.com",
		"a.b+tag@x.example":              "a.b+tag@x.example",
		"o'hara!#$%&*/=?^_`{|}~@d.e":     "o'hara!#$%&*/=?^_`{|}~@d.e",
		strings.Repeat("l", 64) + "@d.e": strings.Repeat("l", 64) + "@d.e",
	}
	for in, want := range good {
		if got, err := NormalizeAddress(in); err != nil || got != want {
			t.Errorf("NormalizeAddress(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := []string{"", "noat", "@d.e", "a@", ".a@d.e", "a.@d.e", "a..b@d.e", `"q"@d.e`, "a b@d.e", "a@[1.2.3.4]",
		"a@-d.e", "a@d-.e", "a@d..e", "a@d_e.f", strings.Repeat("l", 65) + "@d.e",
		"a@" + strings.Repeat("x", 64) + ".e", "a@" + strings.Repeat("abcdefghi.", 26) + "com", "é@d.e", "a,b@d.e"}
	for _, in := range bad {
		if got, err := NormalizeAddress(in); err == nil {
			t.Errorf("NormalizeAddress(%q) = %q, want an error", in, got)
		}
	}
}

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := HashPassword("s3cret")
	if !strings.HasPrefix(h, "{SSHA}") || h == h2 || !IsHash(h) {
		t.Fatalf("hash %q (second %q): want {SSHA} with a random salt", h, h2)
	}
	if !VerifyPassword(h, "s3cret") || VerifyPassword(h, "s3cret ") {
		t.Fatal("VerifyPassword does not check the hash")
	}
	if IsHash("{SSHA}short") || IsHash("plain") {
		t.Fatal("IsHash accepts non-hashes")
	}
	if _, err := HashPassword(""); err == nil {
		t.Fatal("empty password accepted")
	}
}

func chooser(p spec.Policy) *Chooser {
	return &Chooser{Policy: p, Names: []string{"inst1", "inst2", "inst3"}, Weights: map[string]int{},
		Domains: map[string]string{}, Rand: rand.New(rand.NewPCG(1, 2))}
}

// Weighted random over 1,000 choices: each share within 5 standard
// deviations of its weight's (a false failure every ~1.7 million runs;
// the seed is fixed anyway).
func TestWeightedRandomDistribution(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 42} {
		c := chooser(spec.PolicyWeightedRandom)
		c.Rand = rand.New(rand.NewPCG(seed, seed))
		c.Weights = map[string]int{"inst1": 5, "inst2": 3, "inst3": 2}
		const n = 1000
		got := map[string]int{}
		for i := 0; i < n; i++ {
			name, err := c.Choose("example.com", nil)
			if err != nil {
				t.Fatal(err)
			}
			got[name]++
		}
		for name, w := range c.Weights {
			p := float64(w) / 10
			mean, sd := n*p, math.Sqrt(n*p*(1-p))
			if math.Abs(float64(got[name])-mean) > 5*sd {
				t.Errorf("seed %d: %s chosen %d times of %d, want %.0f ± %.0f", seed, name, got[name], n, mean, 5*sd)
			}
		}
	}
	c := chooser(spec.PolicyWeightedRandom)
	c.Weights = map[string]int{"inst1": 1, "inst2": 0}
	for i := 0; i < 200; i++ {
		if name, _ := c.Choose("d", nil); name != "inst1" {
			t.Fatalf("weight 0 (or no weight) chosen: %s", name)
		}
	}
}

func TestRandomDistribution(t *testing.T) {
	c := chooser(spec.PolicyRandom)
	const n = 1000
	got := map[string]int{}
	for i := 0; i < n; i++ {
		name, _ := c.Choose("d", nil)
		got[name]++
	}
	p := 1.0 / 3
	for _, name := range c.Names {
		if math.Abs(float64(got[name])-n*p) > 5*math.Sqrt(n*p*(1-p)) {
			t.Errorf("%s chosen %d times of %d", name, got[name], n)
		}
	}
}

func TestLeastUsedAndDomain(t *testing.T) {
	c := chooser(spec.PolicyLeastUsed)
	counts := map[string]int{"inst1": 5, "inst2": 3, "inst3": 4}
	for i := 0; i < 6; i++ {
		name, _ := c.Choose("d", counts)
		counts[name]++
	}
	if counts["inst1"] != 6 || counts["inst2"] != 6 || counts["inst3"] != 6 {
		t.Errorf("least used does not fill the emptiest first: %v", counts)
	}
	d := chooser(spec.PolicyDomain)
	d.Domains = map[string]string{"a.example": "inst3"}
	for i := 0; i < 100; i++ {
		if name, err := d.Choose("A.example", nil); err != nil || name != "inst3" {
			t.Fatalf("domain policy chose %q, %v", name, err)
		}
	}
	if _, err := d.Choose("b.example", nil); err == nil || !strings.Contains(err.Error(), "no home instance") {
		t.Fatalf("a domain without home: %v", err)
	}
	if got := d.DomainInstances("a.example", "inst3"); len(got) != 1 || got[0] != "inst3" {
		t.Errorf("domain-based creates the domain on %v", got)
	}
	if got := c.DomainInstances("a.example", "inst3"); len(got) != 3 {
		t.Errorf("least used creates the domain on %v", got)
	}
}

func TestReadCSV(t *testing.T) {
	in := "address,password,instance,quota\n" +
		"# a comment\n" +
		"a@d.e,pw1\n" +
		"b@d.e,\"p,w\",inst2,500M\n" +
		"c@d.e,{SSHA}abc,,\n" +
		"bad,secretpw\n" +
		"a@d.e,secretpw2\n" +
		"e@d.e,pw,,lots\n"
	rows, err := ReadCSV(strings.NewReader(in))
	if len(rows) != 3 || rows[1].Password != "p,w" || rows[1].Instance != "inst2" || *rows[1].Quota != 500<<20 {
		t.Fatalf("rows %+v", rows)
	}
	if err == nil {
		t.Fatal("no error for the bad lines")
	}
	msg := err.Error()
	for _, want := range []string{"line 6:", "line 7: a@d.e is already on line 3", "line 8:"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "secretpw") {
		t.Errorf("a password in the error: %q", msg)
	}
}
