package storetest

import (
	"strings"
	"testing"

	"github.com/mailfleet/mailfleet/runtime/config"
	"github.com/mailfleet/mailfleet/runtime/directory"
	"github.com/mailfleet/mailfleet/runtime/directory/slapdtest"
	"github.com/mailfleet/mailfleet/runtime/store/maildir"
)

// Cluster is a slapd and two store instances (inst1, inst2) serving
// example.org, trusting 127.0.0.0/8 (the front-end), and a directory
// client routing to them.
type Cluster struct {
	Slapd     *slapdtest.Server
	Inst1     *Instance
	Inst2     *Instance
	Instances map[string]config.InstanceRoute
	Directory *directory.Directory
	Accounts  []slapdtest.Account
}

// Accounts of a Cluster: alice and carol on inst1, bob on inst2.
var Accounts = []slapdtest.Account{
	{Address: "alice@example.org", Password: "alice-pw", MailHost: "inst1.backend.test"},
	{Address: "bob@example.org", Password: "bob-pw", MailHost: "inst2.backend.test"},
	{Address: "carol@example.org", Password: "carol-pw", MailHost: "inst1.backend.test"},
	{Address: "twice@example.org", Password: "twice-pw", MailHost: "inst1.backend.test"},
	{Address: "twice@example.org", Password: "twice-pw", MailHost: "inst2.backend.test", OU: "others"},
}

// NewCluster starts a Cluster. storeTLS, when set, gives both instances
// that certificate.
func NewCluster(t testing.TB, storeTLS *Cert) *Cluster {
	t.Helper()
	cl := &Cluster{Slapd: slapdtest.Start(t, Accounts), Accounts: Accounts}
	o := Options{LDAP: cl.Slapd.Config(), Domains: []string{"example.org"}, TrustedNetworks: []string{"127.0.0.0/8"}, TLS: storeTLS}
	o.Name = "inst1"
	cl.Inst1 = Start(t, o)
	o.Name = "inst2"
	cl.Inst2 = Start(t, o)
	cl.Instances = map[string]config.InstanceRoute{cl.Inst1.FQDN: cl.Inst1.Route(), cl.Inst2.FQDN: cl.Inst2.Route()}
	d, err := directory.New(directory.Options{LDAP: cl.Slapd.Config(), Instances: cl.Instances})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	cl.Directory = d
	return cl
}

// Deliver puts a message into the INBOX of address on the instance.
func (in *Instance) Deliver(t testing.TB, address, msg string) {
	t.Helper()
	a, err := in.Store().Account(address)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Inbox().Deliver(strings.NewReader(msg), maildir.DeliverOptions{IgnoreQuota: true}); err != nil {
		t.Fatal(err)
	}
}
