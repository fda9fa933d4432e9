package provision_test

import (
	"context"
	"net"
	"os"
	"sync"
	"testing"

	"github.com/mailfleet/mailfleet/internal/testutil"
	"github.com/mailfleet/mailfleet/provision"
	"github.com/mailfleet/mailfleet/provision/provisiontest"
	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/spec/decode"
)

// TestOpenWithDialerCarriesEveryConnection: with Options.Dial (what the
// account commands set to tunnel through a jump host) the directory and
// every instance's admin API are reached only through the dialers given,
// each asked for by its own name; a dialer that refuses makes the command
// fail instead of falling back to a direct connection.
func TestOpenWithDialerCarriesEveryConnection(t *testing.T) {
	testutil.Long(t)
	dev := provisiontest.Start(t, "127.0.11.140")
	tp, _, ds := decode.Load(dev.Topology, decode.Options{Env: os.LookupEnv})
	if tp != nil {
		ds = append(ds, spec.Validate(tp)...)
	}
	if ds.HasErrors() {
		t.Fatal(ds)
	}
	var mu sync.Mutex
	dials := map[string][]string{} // target name → addresses dialled
	refuse := false
	opts := provision.Options{Dial: func(name string) provision.Dialer {
		return func(ctx context.Context, network, addr string) (net.Conn, error) {
			mu.Lock()
			dials[name] = append(dials[name], addr)
			r := refuse
			mu.Unlock()
			if r {
				return nil, &net.OpError{Op: "dial", Net: network, Err: os.ErrPermission}
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	}}
	s, err := provision.OpenWith(tp, opts)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := s.Session()
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	ctx := context.Background()
	var homes []string
	for _, a := range []string{"dial1@mailfleet.test", "dial2@mailfleet.test", "dial3@mailfleet.test"} {
		res, err := ss.Add(ctx, provision.AddRequest{Address: a, Password: "c0rrect horse"})
		if err != nil {
			t.Fatal(err)
		}
		homes = append(homes, res.Instance)
	}
	mu.Lock()
	if len(dials[""]) == 0 {
		t.Errorf("the directory was not reached through the dialer: %v", dials)
	}
	for _, d := range dials[""] {
		if host, _, _ := net.SplitHostPort(d); host != tp.Directory.VIP.String() {
			t.Errorf("directory dialled at %s", d)
		}
	}
	for _, h := range homes {
		if len(dials[h]) == 0 {
			t.Errorf("instance %s was not reached through its dialer: %v", h, dials)
		}
	}
	refuse = true
	mu.Unlock()
	ss.Close()
	s2, err := provision.OpenWith(tp, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Session(); err == nil {
		t.Fatal("a refusing dialer still gave a session: the connection went around it")
	}
}
