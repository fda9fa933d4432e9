package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailfleet/mailfleet/runtime/config"
)

func TestFrontendRoleFlagsAndCheck(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"frontend"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "-config is required") {
		t.Fatalf("no -config: %d %s", code, errb.String())
	}
	dir := t.TempDir()
	cfg := config.Frontend{FormatVersion: config.FormatVersion, Node: "fe1", Admin: "127.0.0.1:9101",
		IMAP: &config.Proxy{Listen: "127.0.0.1:143", AuthenticateOnProxy: true},
		LDAP: config.LDAP{URLs: []string{"ldap://127.0.0.1:389/"}, BindDN: "cn=svc,dc=example,dc=org", BindPasswordFile: filepath.Join(dir, "pw"),
			Base: "dc=example,dc=org", Filter: "(&(uid=%e)(objectClass=inetLocalMailRecipient))", HostAttribute: "mailHost"},
		Instances: map[string]config.InstanceRoute{"inst1.example.org": {Name: "inst1", IMAP: "10.0.0.1:143"}},
		Domains:   []string{"example.org"}}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(dir, "frontend.json")
	os.WriteFile(path, b, 0o600)
	out.Reset()
	errb.Reset()
	if code := run([]string{"frontend", "-config", path, "-check"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "is valid") {
		t.Fatalf("-check: %d %s %s", code, out.String(), errb.String())
	}
	// No bind password file: the node cannot start, and says why.
	errb.Reset()
	if code := run([]string{"frontend", "-config", path}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "bind password") {
		t.Fatalf("missing password file: %d %s", code, errb.String())
	}
	os.WriteFile(path, []byte(`{"format_version": 1}`), 0o600)
	errb.Reset()
	if code := run([]string{"frontend", "-config", path, "-check"}, &out, &errb); code != 1 {
		t.Fatalf("invalid config: %d %s", code, errb.String())
	}
}
