package spec_test

import (
	"strings"
	"testing"
	"time"

	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/spec/spectest"
)

// summaries lists the diagnostics of t that mention "VRRP" or "advert".
func vrrpDiagnostics(t *spec.Topology) []string {
	var out []string
	for _, d := range spec.Validate(t) {
		if strings.Contains(d.Summary, "VRRP") || strings.Contains(d.Summary, "advert") {
			out = append(out, d.Summary)
		}
	}
	return out
}

// The advert interval: VRRPv3's in 10 ms steps, VRRPv2's (a password) in
// whole seconds; a password is a warning that says what it costs.
func TestVRRPAdvertInterval(t *testing.T) {
	for _, c := range []struct {
		advert   time.Duration
		password bool
		want     string
		eff      time.Duration
	}{
		{0, false, "", spec.DefaultVRRPAdvert},
		{300 * time.Millisecond, false, "", 300 * time.Millisecond},
		{5 * time.Millisecond, false, "Invalid advert interval", 5 * time.Millisecond},
		{41 * time.Second, false, "Invalid advert interval", 41 * time.Second},
		{0, true, "VRRP password", time.Second},
		{2 * time.Second, true, "VRRP password", 2 * time.Second},
		{1500 * time.Millisecond, true, "Invalid advert interval,VRRP password", 1500 * time.Millisecond},
	} {
		top := spectest.Reference()
		b := top.Balancers[0]
		b.VRRP.Advert = c.advert
		b.VRRP.Password = spec.Secret{}
		if c.password {
			b.VRRP.Password = spec.Secret{Known: true, Value: "s3cret", Source: `file("vrrp")`}
		}
		if got := strings.Join(vrrpDiagnostics(top), ","); got != c.want {
			t.Errorf("advert %v, password %v: %q, want %q", c.advert, c.password, got, c.want)
		}
		if got := b.VRRP.AdvertInterval(); got != c.eff {
			t.Errorf("advert %v, password %v: interval %v, want %v", c.advert, c.password, got, c.eff)
		}
	}
}
