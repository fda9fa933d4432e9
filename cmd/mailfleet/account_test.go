package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailfleet/mailfleet/internal/testutil"
	"github.com/mailfleet/mailfleet/provision"
	"github.com/mailfleet/mailfleet/provision/provisiontest"
)

type cliRun struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, stdin string, envs map[string]string, args ...string) cliRun {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(k string) (string, bool) {
		if v, ok := envs[k]; ok {
			return v, true
		}
		if k == "MAILFLEET_TOPOLOGY" {
			return "", false
		}
		return os.LookupEnv(k)
	}}
	code := run(e, args)
	return cliRun{code, out.String(), errb.String()}
}

func TestAccountCommands(t *testing.T) {
	testutil.Long(t)
	dev := provisiontest.Start(t, "127.0.12.100")
	top := map[string]string{"MAILFLEET_TOPOLOGY": dev.Topology}
	const secret = "Sup3r-s3cret-pw"
	check := func(r cliRun, code int, out string) {
		t.Helper()
		if r.code != code || !strings.Contains(r.stdout+r.stderr, out) {
			t.Fatalf("exit %d, want %d; want %q in\nstdout: %s\nstderr: %s", r.code, code, out, r.stdout, r.stderr)
		}
		if strings.Contains(r.stdout+r.stderr, secret) {
			t.Fatalf("the password was printed: %s %s", r.stdout, r.stderr)
		}
	}
	// add: password from stdin, topology from the environment, flags after the argument.
	check(runCLI(t, secret+"\n", top, "account", "add", "dave@mailfleet.test", "-password-stdin", "--quota", "2G"), 0, "created dave@mailfleet.test on inst")
	// from a file, topology from -topology, on a named instance
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte(secret+"\n"), 0o600)
	check(runCLI(t, "", nil, "account", "add", "-topology", dev.Topology, "eve@mailfleet.test", "-password-file", pwFile, "-instance", "inst2"), 0, "on inst2")
	check(runCLI(t, "", top, "account", "add", "x@mailfleet.test"), 1, "no password: use -password-file FILE or -password-stdin")
	check(runCLI(t, secret, top, "account", "add", "bad..address@mailfleet.test", "-password-stdin"), 1, "invalid address")
	check(runCLI(t, secret, top, "account", "add", "eve@mailfleet.test", "-password-stdin"), 1, "already exists")
	check(runCLI(t, secret, top, "account", "add", "f@mailfleet.test", "-password-stdin", "-instance", "inst9"), 1, `no mail_instance "inst9"`)
	check(runCLI(t, "", map[string]string{"MAILFLEET_TOPOLOGY": t.TempDir()}, "account", "ls"), 1, "No topology files")

	imapLogin(t, dev.Info.IMAP, "dave@mailfleet.test", secret)

	check(runCLI(t, "", top, "account", "show", "Dave@mailfleet.test"), 0, "quota     2G")
	check(runCLI(t, "", top, "account", "set", "dave@mailfleet.test", "-quota", "500M"), 0, "quota of dave@mailfleet.test: 500M")
	check(runCLI(t, "N3w-pass\n", top, "account", "passwd", "dave@mailfleet.test", "-password-stdin"), 0, "password of dave@mailfleet.test changed")
	imapLogin(t, dev.Info.IMAP, "dave@mailfleet.test", "N3w-pass")

	r := runCLI(t, "", top, "account", "ls", "-json", "-instance", "inst2")
	var list []provision.Account
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || r.code != 0 {
		t.Fatalf("ls -json: %v %s %s", err, r.stdout, r.stderr)
	}
	var names []string
	for _, a := range list {
		names = append(names, a.Address)
	}
	if fmt.Sprint(names) != "[bob@mailfleet.test eve@mailfleet.test]" {
		t.Fatalf("ls -instance inst2: %v", names)
	}
	check(runCLI(t, "", top, "account", "ls", "-domain", "mailfleet.test"), 0, "dave@mailfleet.test")
	check(runCLI(t, "", top, "account", "check"), 0, "consistent")

	// import, twice (resumable), with a hash column and a bad line.
	hash, _ := provision.HashPassword(secret)
	csv := "address,password,instance,quota\n"
	for i := 0; i < 30; i++ {
		csv += fmt.Sprintf("bulk%d@mailfleet.test,%s,,\n", i, secret)
	}
	csv += "hashed@mailfleet.test," + hash + ",inst1,1G\n"
	csvFile := filepath.Join(t.TempDir(), "a.csv")
	os.WriteFile(csvFile, []byte(csv), 0o600)
	check(runCLI(t, "", top, "account", "import", csvFile), 0, "31 rows: 31 created, 0 skipped")
	check(runCLI(t, "", top, "account", "import", csvFile, "-workers", "2"), 0, "31 rows: 0 created, 31 skipped")
	os.WriteFile(csvFile, []byte(csv+"nope,"+secret+"\n"), 0o600)
	check(runCLI(t, "", top, "account", "import", csvFile), 1, "line 33: invalid address")

	// move, with its short drain for the test.
	check(runCLI(t, "", top, "account", "move", "dave@mailfleet.test", "-to", "inst2", "-drain", "100ms"), 0, "to inst2")
	check(runCLI(t, "", top, "account", "move", "dave@mailfleet.test", "-to", "inst2"), 1, "already lives on inst2")
	imapLogin(t, dev.Info.IMAP, "dave@mailfleet.test", "N3w-pass")

	// check finds a difference (exit 1), -fix repairs it (exit 0).
	ss := openSession(t, dev.Topology)
	if _, err := ss.Instances["inst1"].CreateAccount(t.Context(), "ghost@mailfleet.test"); err != nil {
		t.Fatal(err)
	}
	check(runCLI(t, "", top, "account", "check"), 1, "orphaned mailbox: ghost@mailfleet.test on inst1")
	check(runCLI(t, "", top, "account", "check", "-fix"), 0, "fixed: removed the empty mailbox")
	check(runCLI(t, "", top, "account", "check", "-json"), 0, `"consistent": true`)

	check(runCLI(t, "", top, "account", "rm", "dave@mailfleet.test"), 0, "removed mailbox on inst2")
	check(runCLI(t, "", top, "account", "show", "dave@mailfleet.test"), 1, "no such account")
	check(runCLI(t, "", top, "account", "help"), 0, "Commands:")
}

func openSession(t *testing.T, path string) *provision.Session {
	t.Helper()
	tp, ds, _ := load(&env{getenv: os.LookupEnv}, path, false)
	if tp == nil {
		t.Fatal(ds)
	}
	s, err := provision.Open(tp)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := s.Session()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	return ss
}
