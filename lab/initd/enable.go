package initd

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Unit file operations (enable, disable, is-enabled, mask): they work on the
// files alone, with or without a running supervisor.

func (l *loader) etcDir() string { return filepath.Join(l.root, "/etc/systemd/system") }

// display strips the root from a path for messages.
func (l *loader) display(p string) string {
	if l.root == "" {
		return p
	}
	return "/" + strings.TrimPrefix(strings.TrimPrefix(p, l.root), "/")
}

// linkTarget is what an enable link points at: the unit file as seen
// inside the root.
func (l *loader) linkTarget(fragment string) string { return l.display(fragment) }

func (l *loader) makeLink(link, target string, quiet bool, errOut io.Writer) error {
	if dst, err := os.Readlink(link); err == nil {
		if dst == target {
			return nil
		}
		return fmt.Errorf("Failed to enable unit, file %s already exists and is a symlink to %s.", l.display(link), dst)
	} else if _, err := os.Lstat(link); err == nil {
		return fmt.Errorf("Failed to enable unit, file %s already exists.", l.display(link))
	}
	if err := os.MkdirAll(filepath.Dir(link), 0755); err != nil {
		return err
	}
	if err := os.Symlink(target, link); err != nil {
		return err
	}
	if !quiet {
		fmt.Fprintf(errOut, "Created symlink %s → %s.\n", l.display(link), target)
	}
	return nil
}

// enableUnit creates the [Install] links of a unit.
func (l *loader) enableUnit(name string, quiet bool, errOut io.Writer, seen map[string]bool) error {
	name = normalizeName(name)
	if seen[name] {
		return nil
	}
	seen[name] = true
	u, err := l.load(name)
	if err != nil || u.Fragment == "" {
		return fmt.Errorf("Failed to enable unit: Unit file %s does not exist.", name)
	}
	if u.Masked {
		return fmt.Errorf("Failed to enable unit: Unit file %s is masked.", name)
	}
	inst := u.Name
	if p, i, s, ok := splitTemplate(inst); ok && i == "" {
		if u.DefaultInstance == "" {
			if !quiet {
				fmt.Fprintf(errOut, "Unit %s is a template without DefaultInstance=; name an instance to enable.\n", inst)
			}
			return nil
		}
		inst = p + "@" + u.DefaultInstance + s
	}
	if len(u.WantedBy) == 0 && len(u.RequiredBy) == 0 && len(u.Alias) == 0 && len(u.Also) == 0 {
		if !quiet {
			fmt.Fprintf(errOut, "The unit files have no installation config (WantedBy=, RequiredBy=, Also=,\nAlias= settings in the [Install] section, and DefaultInstance= for template\nunits). This means they are not meant to be enabled or disabled using systemctl.\n")
		}
		return nil
	}
	target := l.linkTarget(u.Fragment)
	etc := l.etcDir()
	for _, w := range u.WantedBy {
		if err := l.makeLink(filepath.Join(etc, w+".wants", inst), target, quiet, errOut); err != nil {
			return err
		}
	}
	for _, w := range u.RequiredBy {
		if err := l.makeLink(filepath.Join(etc, w+".requires", inst), target, quiet, errOut); err != nil {
			return err
		}
	}
	for _, a := range u.Alias {
		if a == u.Name || strings.ContainsRune(a, '/') {
			continue
		}
		if filepath.Join(etc, a) == u.Fragment {
			continue
		}
		if err := l.makeLink(filepath.Join(etc, a), target, quiet, errOut); err != nil {
			return err
		}
	}
	for _, a := range u.Also {
		if err := l.enableUnit(a, quiet, errOut, seen); err != nil {
			return err
		}
	}
	return nil
}

// disableUnit removes every enable link of a unit (for a template: of all
// its instances) and its alias links.
func (l *loader) disableUnit(name string, quiet bool, errOut io.Writer, seen map[string]bool) error {
	name = normalizeName(name)
	if seen[name] {
		return nil
	}
	seen[name] = true
	u, err := l.load(name)
	if err != nil || u.Fragment == "" {
		return fmt.Errorf("Failed to disable unit: Unit file %s does not exist.", name)
	}
	etc := l.etcDir()
	match := func(n string) bool {
		if n == u.Name || n == name {
			return true
		}
		if p, i, s, ok := splitTemplate(u.Name); ok && i == "" {
			return strings.HasPrefix(n, p+"@") && strings.HasSuffix(n, s)
		}
		return false
	}
	var removed []string
	dirs, _ := filepath.Glob(filepath.Join(etc, "*.wants"))
	more, _ := filepath.Glob(filepath.Join(etc, "*.requires"))
	dirs = append(dirs, more...)
	sort.Strings(dirs)
	for _, d := range dirs {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if e.Type()&os.ModeSymlink != 0 && match(e.Name()) {
				p := filepath.Join(d, e.Name())
				if os.Remove(p) == nil {
					removed = append(removed, p)
				}
			}
		}
	}
	for _, a := range u.Aliases {
		p := filepath.Join(etc, a)
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			if dst, _ := os.Readlink(p); dst != "/dev/null" && os.Remove(p) == nil {
				removed = append(removed, p)
			}
		}
	}
	if !quiet {
		for _, p := range removed {
			fmt.Fprintf(errOut, "Removed \"%s\".\n", l.display(p))
		}
	}
	for _, a := range u.Also {
		if err := l.disableUnit(a, quiet, errOut, seen); err != nil {
			return err
		}
	}
	return nil
}

// unitFileState is systemctl is-enabled's answer.
func (l *loader) unitFileState(name string) (string, error) {
	name = normalizeName(name)
	u, err := l.load(name)
	if err != nil || (u.Fragment == "" && !u.Masked) {
		return "", fmt.Errorf("Failed to get unit file state for %s: No such file or directory", name)
	}
	if u.Masked {
		return "masked", nil
	}
	if u.Name != name {
		return "alias", nil
	}
	for _, base := range []string{"/etc/systemd/system", "/run/systemd/system"} {
		for _, kind := range []string{".wants", ".requires"} {
			links, _ := filepath.Glob(filepath.Join(l.root, base, "*"+kind, name))
			if len(links) > 0 {
				if base == "/run/systemd/system" {
					return "enabled-runtime", nil
				}
				return "enabled", nil
			}
		}
	}
	if len(u.WantedBy) == 0 && len(u.RequiredBy) == 0 && len(u.Alias) == 0 {
		if len(u.Also) > 0 {
			return "indirect", nil
		}
		return "static", nil
	}
	return "disabled", nil
}

func (l *loader) maskUnit(name string, quiet bool, errOut io.Writer) error {
	name = normalizeName(name)
	return l.makeLink(filepath.Join(l.etcDir(), name), "/dev/null", quiet, errOut)
}

func (l *loader) unmaskUnit(name string, quiet bool, errOut io.Writer) error {
	name = normalizeName(name)
	p := filepath.Join(l.etcDir(), name)
	if dst, err := os.Readlink(p); err == nil && dst == "/dev/null" {
		if err := os.Remove(p); err != nil {
			return err
		}
		if !quiet {
			fmt.Fprintf(errOut, "Removed \"%s\".\n", l.display(p))
		}
	}
	return nil
}
