package initd

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseUnitFile(t *testing.T) {
	src := `# comment
; another
[Unit]
Description=  A test  
After=a.service \
  b.service
# a comment inside a continuation is skipped? no: this one ends it above
Requires=c.service

[Service]
ExecStart=/bin/echo one \
# skipped comment line
	two
Environment="A=1 2" B=3
`
	es, err := parseUnitFile([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []entry{
		{"Unit", "Description", "A test"},
		{"Unit", "After", "a.service  b.service"},
		{"Unit", "Requires", "c.service"},
		{"Service", "ExecStart", "/bin/echo one  two"},
		{"Service", "Environment", `"A=1 2" B=3`},
	}
	if !reflect.DeepEqual(es, want) {
		t.Errorf("got  %q\nwant %q", es, want)
	}
	for _, bad := range []string{"Key=outside\n", "[Unit\n", "[Unit]\nnoequals\n", "[Unit]\n=v\n"} {
		if _, err := parseUnitFile([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if _, err := parseUnitFile(bytes.Repeat([]byte("#"), maxUnitFileSize+1)); err == nil {
		t.Error("oversized file accepted")
	}
}

func TestSpecifiers(t *testing.T) {
	c := specifierContext{Name: "mailfleetd-store@AXIGEN1.service", Hostname: "node1"}
	got := expandSpecifiers("%n %N %p %i %I %H %t/%p %% %z", c)
	want := "mailfleetd-store@AXIGEN1.service mailfleetd-store@AXIGEN1 mailfleetd-store AXIGEN1 AXIGEN1 node1 /run/mailfleetd-store % %z"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	c.Name = `getty@tty\x2d1-a.service`
	if got := expandSpecifiers("%i|%I|%f", c); got != `tty\x2d1-a|tty-1/a|/tty-1/a` {
		t.Errorf("unescape: %q", got)
	}
}

func TestExecLineAndExpansion(t *testing.T) {
	l, err := parseExecLine(`-@/usr/sbin/sshd sshd -D $SSHD_OPTS "${QUOTED}" 'lit $X' a${B}c $$HOME \x41`)
	if err != nil {
		t.Fatal(err)
	}
	if !l.IgnoreFailure || !l.Argv0Override || l.Path != "/usr/sbin/sshd" {
		t.Errorf("prefixes: %+v", l)
	}
	env := map[string]string{"SSHD_OPTS": " -f  /etc/x  -o Port=22 ", "QUOTED": "a  b", "B": "-b-", "X": "no"}
	got := expandArgs(l.Args, env)
	want := []string{"sshd", "-D", "-f", "/etc/x", "-o", "Port=22", "a  b", "lit $X", "a-b-c", "$HOME", "A"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	// an empty $VAR as a word disappears; ${VAR} stays an (empty) argument
	got = expandArgs([]string{"cmd", "$EMPTY", "${EMPTY}"}, map[string]string{})
	if !reflect.DeepEqual(got, []string{"cmd", ""}) {
		t.Errorf("empty: %q", got)
	}
	if _, err := parseExecLine(`/bin/echo "unterminated`); err == nil {
		t.Error("unbalanced quote accepted")
	}
	for _, p := range []string{"+/bin/true", "!/bin/true", "!!/bin/true"} {
		if l, err := parseExecLine(p); err != nil || !l.Privileged || l.Path != "/bin/true" {
			t.Errorf("%s: %+v %v", p, l, err)
		}
	}
}

func TestEnvironment(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "env")
	os.WriteFile(f, []byte(`# comment
SSHD_OPTS=
export A="quoted \"x\" $y"
B='single $z'
C=plain value # trailing comment
D=cont\
inued
`), 0644)
	sc := &serviceConfig{
		Environment:     []string{`"A=from environment" E=5`, `F="x y"`},
		EnvironmentFile: []string{f, "-/nonexistent"},
	}
	env, err := serviceEnvironment(sc, map[string]string{"PATH": labPath})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"PATH": labPath, "SSHD_OPTS": "", "A": `quoted "x" $y`, "B": "single $z",
		"C": "plain value", "D": "continued", "E": "5", "F": "x y"}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("got  %q\nwant %q", env, want)
	}
	sc.EnvironmentFile = []string{"/nonexistent"}
	if _, err := serviceEnvironment(sc, nil); err == nil {
		t.Error("missing EnvironmentFile without - accepted")
	}
}

func TestTimespan(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90": 90 * time.Second, "1s": time.Second, "500ms": 500 * time.Millisecond, "1min 30s": 90 * time.Second,
		"30min": 30 * time.Minute, "2h": 2 * time.Hour, "1.5s": 1500 * time.Millisecond, "infinity": 0, "5m3s": 5*time.Minute + 3*time.Second,
	} {
		if got, err := parseTimespan(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "abc", "-1s"} {
		if _, err := parseTimespan(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// writeTree writes files under root.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0755)
		if strings.HasPrefix(content, "->") {
			if err := os.Symlink(strings.TrimPrefix(content, "->"), full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(content), 0644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoaderTemplatesDropInsAliases(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"lib/systemd/system/mailfleetd-store@.service": `[Unit]
Description=store %i
After=network-online.target
[Service]
Type=notify
User=mailfleet
ExecStart=/usr/local/bin/mailfleetd store -config /etc/mailfleet/%i.hcl
Restart=on-failure
RestartSec=2s
LimitNOFILE=4096
TimeoutStopSec=5min
[Install]
WantedBy=multi-user.target
`,
		// vendor drop-in, overridden by the admin one of the same name
		"lib/systemd/system/mailfleetd-store@.service.d/10-x.conf":            "[Service]\nEnvironment=X=vendor\n",
		"etc/systemd/system/mailfleetd-store@.service.d/10-x.conf":            "[Service]\nEnvironment=X=admin\n",
		"etc/systemd/system/mailfleetd-store@AXIGEN1.service.d/20-reset.conf": "[Service]\nExecStart=\nExecStart=/bin/true %I\nRestart=always\n",
		"etc/systemd/system/service.d/00-all.conf":                            "[Service]\nEnvironment=ALL=1\n",
		"lib/systemd/system/named.service": `[Service]
Type=notify
ExecStart=/usr/sbin/named -f $OPTIONS
[Install]
WantedBy=multi-user.target
Alias=bind9.service
`,
		"lib/systemd/system/ssh.service":    "[Service]\nExecStart=/usr/sbin/sshd -D\n[Install]\nAlias=sshd.service\n",
		"etc/systemd/system/sshd.service":   "->" + filepath.Join(root, "lib/systemd/system/ssh.service"),
		"etc/systemd/system/masked.service": "->/dev/null",
	})
	l := &loader{root: root, hostname: "h"}
	u, err := l.load("mailfleetd-store@AXIGEN1")
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != "mailfleetd-store@AXIGEN1.service" || u.Description != "store AXIGEN1" {
		t.Errorf("name %q description %q", u.Name, u.Description)
	}
	s := u.Service
	if !reflect.DeepEqual(s.ExecStart, []string{"/bin/true AXIGEN1"}) || s.Restart != "always" || s.RestartSec != 2*time.Second ||
		s.User != "mailfleet" || s.LimitNOFILE != "4096" || s.TimeoutStopSec != 5*time.Minute || s.Type != "notify" {
		t.Errorf("service %+v", s)
	}
	if !reflect.DeepEqual(s.Environment, []string{"ALL=1", "X=admin"}) {
		t.Errorf("drop-ins: environment %q (drop-ins %q)", s.Environment, u.DropIns)
	}
	if len(u.DropIns) != 3 {
		t.Errorf("drop-ins %q", u.DropIns)
	}
	// Alias= of a unit not enabled, and an alias symlink
	for alias, want := range map[string]string{"bind9": "named.service", "sshd.service": "ssh.service"} {
		u, err := l.load(alias)
		if err != nil || u.Name != want {
			t.Errorf("%s: %v %v", alias, u, err)
		}
	}
	if u, err := l.load("masked"); err != nil || !u.Masked {
		t.Errorf("masked: %+v %v", u, err)
	}
	if _, err := l.load("nothere"); err != errNotFound {
		t.Errorf("missing unit: %v", err)
	}
	if u, err := l.load("network-online.target"); err != nil || u.Name != "network-online.target" {
		t.Errorf("target without file: %v", err)
	}
	// enable/disable offline under the root
	var msgs bytes.Buffer
	if err := l.enableUnit("mailfleetd-store@AXIGEN1", false, &msgs, map[string]bool{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msgs.String(), "Created symlink /etc/systemd/system/multi-user.target.wants/mailfleetd-store@AXIGEN1.service → /lib/systemd/system/mailfleetd-store@.service.") {
		t.Errorf("enable: %s", msgs.String())
	}
	if st, _ := l.unitFileState("mailfleetd-store@AXIGEN1"); st != "enabled" {
		t.Errorf("state %s", st)
	}
	if st, _ := l.unitFileState("mailfleetd-store@AXIGEN2"); st != "disabled" {
		t.Errorf("other instance %s", st)
	}
	if err := l.enableUnit("named", true, &msgs, map[string]bool{}); err != nil {
		t.Fatal(err)
	}
	if st, _ := l.unitFileState("bind9"); st != "alias" {
		t.Errorf("bind9 %s", st)
	}
	msgs.Reset()
	if err := l.disableUnit("mailfleetd-store@.service", false, &msgs, map[string]bool{}); err != nil {
		t.Fatal(err)
	}
	if st, _ := l.unitFileState("mailfleetd-store@AXIGEN1"); st != "disabled" || !strings.Contains(msgs.String(), "Removed") {
		t.Errorf("after disabling the template: %s %s", st, msgs.String())
	}
}

func TestSystemctlArgs(t *testing.T) {
	req, root, err := parseSystemctlArgs([]string{"--quiet", "enable", "--now", "a", "b", "--no-pager", "-pMainPID", "--property=ActiveState", "--root=/x"})
	if err != nil || root != "/x" || req.Verb != "enable" || !req.Quiet || !req.Now || !reflect.DeepEqual(req.Units, []string{"a", "b"}) ||
		!reflect.DeepEqual(req.Props, []string{"MainPID", "ActiveState"}) {
		t.Errorf("%+v %q %v", req, root, err)
	}
	req, _, err = parseSystemctlArgs([]string{"kill", "-s", "HUP", "--kill-whom=main", "x"})
	if err != nil || req.Signal != "HUP" || req.Whom != "main" {
		t.Errorf("%+v %v", req, err)
	}
	if _, _, err := parseSystemctlArgs([]string{"--bogus"}); err == nil {
		t.Error("unknown option accepted")
	}
}

// TestSystemctlOffline: without a supervisor only the file verbs work.
func TestSystemctlOffline(t *testing.T) {
	t.Setenv(SocketEnv, filepath.Join(t.TempDir(), "none.sock"))
	n := &node{t: t, sock: os.Getenv(SocketEnv)}
	_, errOut, code := n.ctl("restart", "x")
	if code != 1 || !strings.Contains(errOut, "System has not been booted with systemd as init system (PID 1). Can't operate.") {
		t.Errorf("restart offline: %d %q", code, errOut)
	}
	root := t.TempDir()
	writeTree(t, root, map[string]string{"etc/systemd/system/x.service": "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"})
	if _, errOut, code := n.ctl("--root="+root, "enable", "x"); code != 0 || !strings.Contains(errOut, "Created symlink") {
		t.Errorf("enable offline: %d %q", code, errOut)
	}
	if out, _, code := n.ctl("--root="+root, "is-enabled", "x"); code != 0 || out != "enabled\n" {
		t.Errorf("is-enabled offline: %d %q", code, out)
	}
	if _, _, code := n.ctl("daemon-reload"); code != 0 {
		t.Errorf("daemon-reload offline: %d", code)
	}
}

func FuzzParseUnitFile(f *testing.F) {
	for _, p := range []string{"/lib/systemd/system/ssh.service", "/lib/systemd/system/pacemaker.service", "/lib/systemd/system/named.service"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("[Unit]\nA=b\\\n c\n[Service]\nExecStart=\"x\" 'y' \\x41 $V ${W}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		es, err := parseUnitFile(data)
		if err != nil {
			return
		}
		u := &unitFile{Name: "fuzz@i.service", Entries: es}
		u.finish()
		for _, l := range append(u.Service.ExecStart, u.Service.ExecStop...) {
			if pl, err := parseExecLine(l); err == nil {
				expandArgs(pl.Args, map[string]string{"V": "a b", "W": "c"})
			}
		}
		for _, e := range es {
			expandSpecifiers(e.Value, specifierContext{Name: u.Name})
			parseEnvironment(e.Value, map[string]string{})
			parseTimespan(e.Value)
		}
		parseEnvironmentFile(data, map[string]string{})
	})
}
