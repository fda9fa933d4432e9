// Package programs names the machine's programs that mailfleet's commands
// and tests run, with the Debian package that installs each, and finds
// them. scripts/deps.sh installs every package named here (a test checks
// it), and a test that needs a missing program fails naming its package:
// it never skips, so a green run means the program really ran.
//
// It imports nothing of mailfleet.
package programs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
)

// Packages maps each external program that a mailfleet command or test
// runs (directly, or through another program, as ocf-tester runs xmllint)
// to its Debian package.
var Packages = map[string]string{
	// lab and deploy
	"ip": "iproute2", "unshare": "util-linux", "nsenter": "util-linux", "setsid": "util-linux",
	"setpriv": "util-linux", "flock": "util-linux", "mount": "mount",
	"sshd": "openssh-server", "ssh": "openssh-client", "ssh-keygen": "openssh-client",
	"ssh-agent": "openssh-client", "ssh-add": "openssh-client",
	"sh": "dash", "dpkg-query": "dpkg", "arping": "iputils-arping", "fuser": "psmisc", "modprobe": "kmod",
	// directory
	"slapd": "slapd", "slapadd": "slapd", "slaptest": "slapd", "slappasswd": "slapd",
	"ldapsearch": "ldap-utils", "ldapadd": "ldap-utils", "ldapmodify": "ldap-utils", "ldapwhoami": "ldap-utils",
	// DNS
	"named": "bind9", "named-checkzone": "bind9-utils", "named-checkconf": "bind9-utils",
	// balancer pair
	"keepalived": "keepalived",
	// cluster
	"corosync": "corosync", "corosync-cfgtool": "corosync", "pacemakerd": "pacemaker",
	"crm_verify": "pacemaker-cli-utils", "crm_simulate": "pacemaker-cli-utils",
	"crm_resource": "pacemaker-cli-utils", "crm_mon": "pacemaker-cli-utils",
	"cibadmin": "pacemaker-cli-utils", "stonith_admin": "pacemaker-cli-utils",
	"ocf-tester": "resource-agents", "xmllint": "libxml2-utils",
	// validators of rendered files
	"systemd-analyze": "systemd", "ruby": "ruby", "vagrant": "vagrant", "dot": "graphviz",
	// clients and peers
	"curl": "curl", "python3": "python3", "smtp-sink": "postfix",
}

// Package returns the Debian package of program name ("" when unknown).
func Package(name string) string { return Packages[filepath.Base(name)] }

// dirs are searched after PATH: root's programs live in sbin, which a
// user's PATH may lack.
var dirs = []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"}

// Find returns the path of program name, or an error naming the Debian
// package to install.
func Find(name string) (string, error) {
	pkg := Package(name)
	if pkg == "" {
		return "", fmt.Errorf("programs: %s is not in the table of programs (internal/programs): add it with its Debian package, and the package to scripts/deps.sh", name)
	}
	if filepath.IsAbs(name) {
		if executable(name) {
			return name, nil
		}
	} else if p, err := exec.LookPath(name); err == nil {
		return p, nil
	} else {
		for _, d := range dirs {
			if p := filepath.Join(d, name); executable(p) {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%s not found: install the Debian package %s (bash scripts/deps.sh installs every package the tests need)", name, pkg)
}

// Require returns the path of each program named, or fails the test
// naming the Debian packages that are missing. It returns the path of the
// first.
func Require(t testing.TB, names ...string) string {
	t.Helper()
	var first string
	var missing []string
	for i, n := range names {
		p, err := Find(n)
		if err != nil {
			missing = append(missing, err.Error())
			continue
		}
		if i == 0 {
			first = p
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		for _, m := range missing {
			t.Error(m)
		}
		t.FailNow()
	}
	return first
}

func executable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}
