package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"

	"github.com/mailfleet/mailfleet/remote"
)

// tools are the machine's programs the lab runs, with the Debian package of
// each.
var tools = []struct{ path, pkg string }{
	{"ip", "iproute2"},
	{"unshare", "util-linux"},
	{"nsenter", "util-linux"},
	{"setsid", "util-linux"},
	{"/usr/sbin/sshd", "openssh-server"},
	{"/usr/bin/python3", "python3"},
}

// CheckTools returns one error naming the Debian packages to install when a
// tool the lab needs is missing, and the lab must run as root.
func CheckTools() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("lab: must run as root (it makes network and mount namespaces)")
	}
	missing := map[string]bool{}
	var names []string
	for _, t := range tools {
		var err error
		if strings.HasPrefix(t.path, "/") {
			_, err = os.Stat(t.path)
		} else {
			_, err = lookPath(t.path)
		}
		if err != nil {
			names = append(names, t.path)
			missing[t.pkg] = true
		}
	}
	if _, err := os.Stat("/lib/systemd/system/ssh.service"); err != nil {
		names = append(names, "/lib/systemd/system/ssh.service")
		missing["openssh-server"] = true
	}
	if len(missing) == 0 {
		return nil
	}
	var pkgs []string
	for p := range missing {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	return fmt.Errorf("lab: missing %s: install them with\n  apt-get install -y %s", strings.Join(names, ", "), strings.Join(pkgs, " "))
}

func lookPath(name string) (string, error) {
	for _, d := range strings.Split(NodePATH, ":") {
		p := d + "/" + name
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return exec.LookPath(name)
}

// MissingPackages returns those of pkgs that are not installed on this
// machine. The lab's nodes share the machine's /usr, so the packages their
// roles need (render's Host.Packages) must be installed here: apply would
// otherwise run apt-get inside a node and write into the machine's /usr.
func MissingPackages(pkgs []string) ([]string, error) {
	if len(pkgs) == 0 {
		return nil, nil
	}
	out, err := exec.Command("dpkg-query", append([]string{"-W", "-f", remote.DpkgQueryFormat}, pkgs...)...).Output()
	if err != nil {
		var ee *exec.ExitError
		// dpkg-query exits 1 when a package is unknown; its output still
		// lists the others.
		if !errors.As(err, &ee) {
			return nil, fmt.Errorf("lab: dpkg-query: %w (the lab needs a Debian machine)", err)
		}
	}
	return remote.MissingPackages(out, pkgs), nil
}
