package initd

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestDebianNamedService runs Debian's named.service (Type=notify,
// EnvironmentFile=-/etc/default/named with OPTIONS="-u bind") with a private
// /etc/bind and asks it for a zone's SOA; bind9 is reached by its alias.
func TestDebianNamedService(t *testing.T) {
	if _, err := os.Stat("/lib/systemd/system/named.service"); err != nil {
		t.Fatalf("bind9 is not installed: %v", err)
	}
	n := newNode(t)
	etc := filepath.Join(n.dir, "etc-bind")
	os.MkdirAll(etc, 0755)
	os.WriteFile(filepath.Join(etc, "named.conf"), []byte(`options {
	directory "/var/lib/namedtest";
	pid-file none;
	session-keyfile "/var/lib/namedtest/session.key";
	listen-on { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
};
controls { };
zone "lab.test" { type primary; file "/etc/bind/db.lab.test"; };
`), 0644)
	os.WriteFile(filepath.Join(etc, "db.lab.test"), []byte(`$TTL 60
@ IN SOA ns.lab.test. admin.lab.test. 1 60 60 60 60
@ IN NS ns.lab.test.
ns IN A 127.0.0.1
`), 0644)
	// named's working directory, writable by the bind user, on the node's /var/lib
	work := filepath.Join(n.dir, "varlib", "namedtest")
	os.MkdirAll(work, 0775)
	os.Chown(work, 0, bindGID(t))
	os.Chmod(work, 0775)
	n.writeUnit("named.service.d/lab.conf", "[Service]\nTimeoutStartSec=20\n")
	n.extra = []string{"mount --bind " + etc + " /etc/bind"}
	n.start()
	n.must("start", "bind9")
	if st := n.prop("named", "ActiveState"); st != "active" {
		t.Fatalf("named: %s", st)
	}
	var answer *dns.Msg
	err := n.inNetns(func() error {
		m := new(dns.Msg)
		m.SetQuestion("lab.test.", dns.TypeSOA)
		c := &dns.Client{Timeout: 3 * time.Second}
		var err error
		answer, _, err = c.Exchange(m, "127.0.0.1:53")
		return err
	})
	if err != nil || answer == nil || len(answer.Answer) != 1 || !answer.Authoritative {
		t.Fatalf("SOA query: %v %v\n%s", err, answer, readFile(t, filepath.Join(n.logs, "mailfleet-lab", "named.service.log")))
	}
	pid := n.mainPID("named")
	n.must("stop", "bind9.service")
	if pidAlive(pid) {
		t.Errorf("named %d left after stop", pid)
	}
}

func bindGID(t *testing.T) int {
	t.Helper()
	g, err := user.LookupGroup("bind")
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(g.Gid)
	return gid
}
