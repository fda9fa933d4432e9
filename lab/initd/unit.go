package initd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxUnitFileSize bounds what the parser reads of one unit file or drop-in.
const maxUnitFileSize = 1 << 20

// maxLineLength bounds one logical line (after continuations).
const maxLineLength = 64 << 10

// entry is one assignment of a unit file, in file order.
type entry struct {
	Section, Key, Value string
}

// parseUnitFile parses the systemd unit file syntax: [Section] headers,
// Key=Value assignments, comments (# and ;), and lines continued with a
// trailing backslash (which becomes a space). Anything else is an error.
func parseUnitFile(data []byte) ([]entry, error) {
	if len(data) > maxUnitFileSize {
		return nil, fmt.Errorf("unit file larger than %d bytes", maxUnitFileSize)
	}
	var out []entry
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxLineLength+1)
	var cont strings.Builder
	continuing := false
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimRight(sc.Text(), " \t\r")
		trimmed := strings.TrimLeft(line, " \t")
		if continuing && (strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, ";")) {
			// comment lines inside a continuation are skipped, as systemd does
			continue
		}
		if !continuing {
			if trimmed == "" || trimmed[0] == '#' || trimmed[0] == ';' {
				continue
			}
		}
		if strings.HasSuffix(line, "\\") && !strings.HasSuffix(line, "\\\\") {
			if cont.Len()+len(line) > maxLineLength {
				return nil, fmt.Errorf("line %d: too long", lineNo)
			}
			cont.WriteString(strings.TrimSuffix(line, "\\"))
			cont.WriteByte(' ')
			continuing = true
			continue
		}
		if continuing {
			cont.WriteString(trimmed)
			line = cont.String()
			cont.Reset()
			continuing = false
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") || len(line) < 3 {
				return nil, fmt.Errorf("line %d: bad section header %q", lineNo, line)
			}
			section = line[1 : len(line)-1]
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: missing '=' in %q", lineNo, line)
		}
		k = strings.TrimSpace(k)
		if section == "" {
			return nil, fmt.Errorf("line %d: assignment outside of a section", lineNo)
		}
		if k == "" {
			return nil, fmt.Errorf("line %d: empty key", lineNo)
		}
		out = append(out, entry{Section: section, Key: k, Value: strings.TrimSpace(v)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", lineNo+1, err)
	}
	if continuing {
		s := strings.TrimSpace(cont.String())
		if k, v, ok := strings.Cut(s, "="); ok && section != "" && strings.TrimSpace(k) != "" {
			out = append(out, entry{Section: section, Key: strings.TrimSpace(k), Value: strings.TrimSpace(v)})
		}
	}
	return out, nil
}

// unitTypes are the suffixes systemd knows; a name without one is a service.
var unitTypes = []string{".service", ".target", ".socket", ".timer", ".mount", ".automount",
	".path", ".slice", ".scope", ".device", ".swap"}

// normalizeName adds ".service" to a name without a unit type suffix.
func normalizeName(name string) string {
	for _, t := range unitTypes {
		if strings.HasSuffix(name, t) && len(name) > len(t) {
			return name
		}
	}
	return name + ".service"
}

func unitSuffix(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[i:]
	}
	return ""
}

// splitTemplate splits "p@i.service" into ("p", "i", ".service"); ok is false
// for a name without '@'.
func splitTemplate(name string) (prefix, instance, suffix string, ok bool) {
	suffix = unitSuffix(name)
	base := strings.TrimSuffix(name, suffix)
	prefix, instance, ok = strings.Cut(base, "@")
	return
}

// templateOf returns "p@.service" for "p@i.service", or "" for a non-instance.
func templateOf(name string) string {
	p, i, s, ok := splitTemplate(name)
	if !ok || i == "" {
		return ""
	}
	return p + "@" + s
}

// unescapeName undoes systemd's unit name escaping: "-" is "/", "\xNN" a byte.
func unescapeName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '-':
			b.WriteByte('/')
		case c == '\\' && i+3 < len(s) && s[i+1] == 'x':
			if n, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// specifierContext holds the values the % specifiers expand to.
type specifierContext struct {
	Name     string // full unit name, %n
	Hostname string // %H
}

// expandSpecifiers replaces %n %N %p %P %i %I %f %H %t %S %C %L %E %T %V %h %u %U %%.
// Unknown specifiers are left as they are.
func expandSpecifiers(s string, c specifierContext) string {
	if !strings.Contains(s, "%") {
		return s
	}
	suffix := unitSuffix(c.Name)
	base := strings.TrimSuffix(c.Name, suffix)
	prefix, instance, _ := strings.Cut(base, "@")
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case '%':
			b.WriteByte('%')
		case 'n':
			b.WriteString(c.Name)
		case 'N':
			b.WriteString(base)
		case 'p':
			b.WriteString(prefix)
		case 'P':
			b.WriteString(unescapeName(prefix))
		case 'i':
			b.WriteString(instance)
		case 'I':
			b.WriteString(unescapeName(instance))
		case 'j':
			if j := strings.LastIndexByte(prefix, '-'); j >= 0 {
				b.WriteString(prefix[j+1:])
			} else {
				b.WriteString(prefix)
			}
		case 'f':
			if instance != "" {
				b.WriteString("/" + strings.TrimPrefix(unescapeName(instance), "/"))
			} else {
				b.WriteString("/" + strings.TrimPrefix(unescapeName(prefix), "/"))
			}
		case 'H':
			b.WriteString(c.Hostname)
		case 't':
			b.WriteString("/run")
		case 'S':
			b.WriteString("/var/lib")
		case 'C':
			b.WriteString("/var/cache")
		case 'L':
			b.WriteString("/var/log")
		case 'E':
			b.WriteString("/etc")
		case 'T':
			b.WriteString("/tmp")
		case 'V':
			b.WriteString("/var/tmp")
		case 'h':
			b.WriteString("/root")
		case 'u':
			b.WriteString("root")
		case 'U':
			b.WriteString("0")
		default:
			b.WriteByte('%')
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// unitFile is a loaded unit: its file, drop-ins and the settings the lab uses.
type unitFile struct {
	Name     string   // canonical name, e.g. "ssh.service", "mailfleetd-store@AXIGEN1.service"
	Fragment string   // path of the unit file ("" for a target without file)
	DropIns  []string // drop-in files, in the order applied
	Aliases  []string // other names (Alias= and alias symlinks)
	Masked   bool     // the unit file is a link to /dev/null
	Quirk    string   // why the lab adjusts this unit (labQuirks), if it does
	Entries  []entry  // every assignment, file then drop-ins, specifiers expanded
	stamp    string   // identifies the files' versions, to notice changes

	Description                       string
	Requires, Wants, After, Before    []string
	BindsTo, PartOf, Requisite        []string
	Conditions, Asserts               []condition
	StartLimitBurst                   int
	StartLimitInterval                time.Duration
	WantedBy, RequiredBy, Also, Alias []string
	DefaultInstance                   string
	HasInstall                        bool
	Service                           serviceConfig
}

type condition struct {
	Key, Value string
}

// serviceConfig holds the [Service] keys the lab honours.
type serviceConfig struct {
	Type                                              string
	ExecCondition, ExecStartPre, ExecStart            []string
	ExecStartPost, ExecReload, ExecStop, ExecStopPost []string
	Environment                                       []string // raw assignment lists
	EnvironmentFile                                   []string
	User, Group                                       string
	SupplementaryGroups                               []string
	WorkingDirectory                                  string
	Restart                                           string
	RestartSec                                        time.Duration
	RestartPreventExitStatus, SuccessExitStatus       []string
	KillMode                                          string
	KillSignal                                        string
	SendSIGKILL                                       bool
	TimeoutStartSec, TimeoutStopSec                   time.Duration
	RemainAfterExit                                   bool
	PIDFile                                           string
	RuntimeDirectory, StateDirectory                  []string
	LogsDirectory, CacheDirectory                     []string
	ConfigurationDirectory                            []string
	RuntimeDirectoryMode, StateDirectoryMode          os.FileMode
	LogsDirectoryMode, CacheDirectoryMode             os.FileMode
	ConfigurationDirectoryMode                        os.FileMode
	RuntimeDirectoryPreserve                          string
	LimitNOFILE                                       string
	StandardOutput, StandardError                     string
	AmbientCapabilities                               []string
	UMask                                             os.FileMode
	hasUMask                                          bool
	Nice                                              int
	hasNice                                           bool
}

// labQuirks adjust units that cannot work as written outside a real
// systemd. They apply before the drop-ins, so a drop-in can undo them.
//
// keepalived (2.2.x) sends READY=1 only when its parent is PID 1 and PID 1
// is named "systemd" (lib/systemd.c, check_parent_systemd): under the lab
// supervisor it never would, so its Type=notify unit is run as Type=simple,
// and the start waits for its PID file instead (written once its signal
// handlers are in place: a SIGHUP from an early reload would kill it).
var labQuirks = map[string]struct {
	entries []entry
	why     string
}{
	"keepalived.service": {
		entries: []entry{
			{Section: "Service", Key: "Type", Value: "simple"},
			{Section: "Service", Key: "ExecStartPost", Value: `-/bin/sh -c 'i=0; while [ ! -s /run/keepalived.pid ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done'`},
		},
		why: "Type=simple, ready once /run/keepalived.pid is written: keepalived notifies only a PID 1 systemd",
	},
}

// unitSearchPath is where units are looked for, first match wins.
var unitSearchPath = []string{"/etc/systemd/system", "/run/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"}

// loader finds and loads units below a root ("" is the machine's, or the
// node's inside its mount namespace).
type loader struct {
	root     string
	hostname string
	mu       sync.Mutex
	aliases  map[string]string // alias name -> canonical name, from [Install] Alias=; guarded by mu
}

// forgetAliases makes the next lookup scan the unit files again.
func (l *loader) forgetAliases() {
	l.mu.Lock()
	l.aliases = nil
	l.mu.Unlock()
}

func (l *loader) dirs() []string {
	d := make([]string, len(unitSearchPath))
	for i, p := range unitSearchPath {
		d[i] = filepath.Join(l.root, p)
	}
	return d
}

// errNotFound is returned for a unit without a file.
var errNotFound = errors.New("not found")

// findFragment returns the path of the file defining name (or its template),
// and the canonical name (the target of an alias symlink).
func (l *loader) findFragment(name string) (path, canonical string, masked bool, err error) {
	tmpl := templateOf(name)
	for _, cand := range []string{name, tmpl} {
		if cand == "" {
			continue
		}
		for _, d := range l.dirs() {
			p := filepath.Join(d, cand)
			fi, err := os.Lstat(p)
			if err != nil {
				continue
			}
			if fi.Mode()&os.ModeSymlink != 0 {
				target, err := filepath.EvalSymlinks(p)
				if err != nil {
					if dst, e := os.Readlink(p); e == nil && dst == "/dev/null" {
						return p, name, true, nil
					}
					continue
				}
				if target == "/dev/null" {
					return p, name, true, nil
				}
				tb := filepath.Base(target)
				if tb != cand && tb != filepath.Base(p) {
					// an alias: the unit's name is the link target's
					if cand == tmpl {
						// "p@.service" -> "q@.service": the instance keeps its instance
						_, inst, suf, _ := splitTemplate(name)
						if tp, _, _, ok := splitTemplate(tb); ok {
							return target, tp + "@" + inst + suf, false, nil
						}
					}
					return target, tb, false, nil
				}
				return target, name, false, nil
			}
			if fi.Mode().IsRegular() {
				return p, name, false, nil
			}
		}
	}
	// Alias= from [Install] of a unit not (yet) enabled
	l.mu.Lock()
	if l.aliases == nil {
		l.scanAliases()
	}
	c, ok := l.aliases[name]
	l.mu.Unlock()
	if ok && c != name {
		return l.findFragment(c)
	}
	return "", name, false, errNotFound
}

// scanAliases reads every unit file in the search path for Alias= lines.
func (l *loader) scanAliases() {
	l.aliases = map[string]string{}
	dirs := l.dirs()
	for i := len(dirs) - 1; i >= 0; i-- {
		ents, err := os.ReadDir(dirs[i])
		if err != nil {
			continue
		}
		for _, e := range ents {
			n := e.Name()
			if e.IsDir() || unitSuffix(n) == "" || !e.Type().IsRegular() {
				continue
			}
			data, err := os.ReadFile(filepath.Join(dirs[i], n))
			if err != nil || !bytes.Contains(data, []byte("Alias")) {
				continue
			}
			ents, err := parseUnitFile(data)
			if err != nil {
				continue
			}
			for _, en := range ents {
				if en.Section == "Install" && en.Key == "Alias" {
					for _, a := range strings.Fields(en.Value) {
						l.aliases[a] = n
					}
				}
			}
		}
	}
}

// dropInDirs lists the drop-in directory names for a unit, lowest priority first.
func dropInNames(name string, aliases []string) []string {
	var names []string
	suffix := unitSuffix(name)
	names = append(names, strings.TrimPrefix(suffix, ".")+".d") // "service.d"
	// prefix drop-ins: "foo-.service.d" for "foo-bar.service"
	base := strings.TrimSuffix(name, suffix)
	for i := 0; i < len(base); i++ {
		if base[i] == '-' && i > 0 {
			names = append(names, base[:i+1]+suffix+".d")
		}
	}
	if t := templateOf(name); t != "" {
		names = append(names, t+".d")
	}
	for _, a := range aliases {
		names = append(names, a+".d")
	}
	names = append(names, name+".d")
	return names
}

// load reads a unit by name. A target or other non-service unit without a
// file loads as an empty unit.
func (l *loader) load(name string) (*unitFile, error) {
	name = normalizeName(name)
	path, canonical, masked, err := l.findFragment(name)
	u := &unitFile{Name: canonical, Fragment: path, Masked: masked}
	if err != nil {
		if unitSuffix(name) != ".service" {
			u.Fragment = ""
			u.finish()
			return u, nil
		}
		return nil, err
	}
	if masked {
		u.finish()
		return u, nil
	}
	var stamp strings.Builder
	addStamp := func(p string) {
		if fi, err := os.Stat(p); err == nil {
			fmt.Fprintf(&stamp, "%s:%d:%d;", p, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	data, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	addStamp(path)
	entries, err := parseUnitFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if name != canonical {
		u.Aliases = append(u.Aliases, name)
	}
	for _, e := range entries {
		if e.Section == "Install" && e.Key == "Alias" {
			for _, a := range strings.Fields(e.Value) {
				if a != canonical && !contains(u.Aliases, a) {
					u.Aliases = append(u.Aliases, a)
				}
			}
		}
	}
	// the lab's own adjustments come before the drop-ins, which can undo them
	if q, ok := labQuirks[canonical]; ok {
		entries = append(entries, q.entries...)
		u.Quirk = q.why
	}
	// drop-ins: by file name, the first directory in the search path wins;
	// applied in file name order
	chosen := map[string]string{}
	for _, dn := range dropInNames(canonical, u.Aliases) {
		dirs := l.dirs()
		for i := len(dirs) - 1; i >= 0; i-- {
			ents, err := os.ReadDir(filepath.Join(dirs[i], dn))
			if err != nil {
				continue
			}
			for _, e := range ents {
				if strings.HasSuffix(e.Name(), ".conf") {
					chosen[e.Name()] = filepath.Join(dirs[i], dn, e.Name())
				}
			}
		}
	}
	keys := make([]string, 0, len(chosen))
	for k := range chosen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := chosen[k]
		d, err := readLimited(p)
		if err != nil {
			continue // a dangling drop-in link
		}
		addStamp(p)
		es, err := parseUnitFile(d)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		entries = append(entries, es...)
		u.DropIns = append(u.DropIns, p)
	}
	sc := specifierContext{Name: canonical, Hostname: l.hostname}
	for i := range entries {
		entries[i].Value = expandSpecifiers(entries[i].Value, sc)
	}
	u.Entries = entries
	u.stamp = stamp.String()
	u.finish()
	return u, nil
}

func readLimited(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxUnitFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxUnitFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", p, maxUnitFileSize)
	}
	return data, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// finish derives the typed settings from the entries.
func (u *unitFile) finish() {
	s := &u.Service
	s.Type = "simple"
	s.Restart = "no"
	s.RestartSec = 100 * time.Millisecond
	s.KillMode = "control-group"
	s.KillSignal = "SIGTERM"
	s.SendSIGKILL = true
	s.TimeoutStartSec = 90 * time.Second
	s.TimeoutStopSec = 90 * time.Second
	s.RuntimeDirectoryMode, s.StateDirectoryMode, s.LogsDirectoryMode = 0755, 0755, 0755
	s.CacheDirectoryMode, s.ConfigurationDirectoryMode = 0755, 0755
	u.StartLimitBurst = 5
	u.StartLimitInterval = 10 * time.Second
	timeoutStartSet := false
	list := func(dst *[]string, v string, words bool) {
		if v == "" {
			*dst = nil
			return
		}
		if words {
			*dst = append(*dst, strings.Fields(v)...)
		} else {
			*dst = append(*dst, v)
		}
	}
	for _, e := range u.Entries {
		v := e.Value
		switch e.Section {
		case "Unit":
			switch e.Key {
			case "Description":
				u.Description = v
			case "Requires":
				list(&u.Requires, v, true)
			case "Wants":
				list(&u.Wants, v, true)
			case "After":
				list(&u.After, v, true)
			case "Before":
				list(&u.Before, v, true)
			case "BindsTo":
				list(&u.BindsTo, v, true)
			case "PartOf":
				list(&u.PartOf, v, true)
			case "Requisite":
				list(&u.Requisite, v, true)
			case "StartLimitBurst":
				if n, err := strconv.Atoi(v); err == nil {
					u.StartLimitBurst = n
				}
			case "StartLimitIntervalSec", "StartLimitInterval":
				if d, err := parseTimespan(v); err == nil {
					u.StartLimitInterval = d
				}
			default:
				if strings.HasPrefix(e.Key, "Condition") {
					if v == "" {
						u.Conditions = nil
					} else {
						u.Conditions = append(u.Conditions, condition{e.Key, v})
					}
				} else if strings.HasPrefix(e.Key, "Assert") {
					if v == "" {
						u.Asserts = nil
					} else {
						u.Asserts = append(u.Asserts, condition{e.Key, v})
					}
				}
			}
		case "Install":
			u.HasInstall = true
			switch e.Key {
			case "WantedBy":
				list(&u.WantedBy, v, true)
			case "RequiredBy":
				list(&u.RequiredBy, v, true)
			case "Also":
				list(&u.Also, v, true)
			case "Alias":
				list(&u.Alias, v, true)
			case "DefaultInstance":
				u.DefaultInstance = v
			}
		case "Service":
			switch e.Key {
			case "Type":
				s.Type = v
			case "ExecCondition":
				list(&s.ExecCondition, v, false)
			case "ExecStartPre":
				list(&s.ExecStartPre, v, false)
			case "ExecStart":
				list(&s.ExecStart, v, false)
			case "ExecStartPost":
				list(&s.ExecStartPost, v, false)
			case "ExecReload":
				list(&s.ExecReload, v, false)
			case "ExecStop":
				list(&s.ExecStop, v, false)
			case "ExecStopPost":
				list(&s.ExecStopPost, v, false)
			case "Environment":
				list(&s.Environment, v, false)
			case "EnvironmentFile":
				list(&s.EnvironmentFile, v, false)
			case "User":
				s.User = v
			case "Group":
				s.Group = v
			case "SupplementaryGroups":
				list(&s.SupplementaryGroups, v, true)
			case "WorkingDirectory":
				s.WorkingDirectory = v
			case "Restart":
				s.Restart = v
			case "RestartSec":
				if d, err := parseTimespan(v); err == nil {
					s.RestartSec = d
				}
			case "RestartPreventExitStatus":
				list(&s.RestartPreventExitStatus, v, true)
			case "SuccessExitStatus":
				list(&s.SuccessExitStatus, v, true)
			case "KillMode":
				s.KillMode = v
			case "KillSignal":
				s.KillSignal = v
			case "SendSIGKILL":
				s.SendSIGKILL = parseBool(v, true)
			case "TimeoutSec":
				if d, err := parseTimespan(v); err == nil {
					s.TimeoutStartSec, s.TimeoutStopSec = d, d
					timeoutStartSet = true
				}
			case "TimeoutStartSec":
				if d, err := parseTimespan(v); err == nil {
					s.TimeoutStartSec = d
					timeoutStartSet = true
				}
			case "TimeoutStopSec":
				if d, err := parseTimespan(v); err == nil {
					s.TimeoutStopSec = d
				}
			case "RemainAfterExit":
				s.RemainAfterExit = parseBool(v, false)
			case "PIDFile":
				s.PIDFile = v
				if v != "" && !filepath.IsAbs(v) {
					s.PIDFile = filepath.Join("/run", v)
				}
			case "RuntimeDirectory":
				list(&s.RuntimeDirectory, v, true)
			case "StateDirectory":
				list(&s.StateDirectory, v, true)
			case "LogsDirectory":
				list(&s.LogsDirectory, v, true)
			case "CacheDirectory":
				list(&s.CacheDirectory, v, true)
			case "ConfigurationDirectory":
				list(&s.ConfigurationDirectory, v, true)
			case "RuntimeDirectoryMode":
				s.RuntimeDirectoryMode = parseMode(v, 0755)
			case "StateDirectoryMode":
				s.StateDirectoryMode = parseMode(v, 0755)
			case "LogsDirectoryMode":
				s.LogsDirectoryMode = parseMode(v, 0755)
			case "CacheDirectoryMode":
				s.CacheDirectoryMode = parseMode(v, 0755)
			case "ConfigurationDirectoryMode":
				s.ConfigurationDirectoryMode = parseMode(v, 0755)
			case "RuntimeDirectoryPreserve":
				s.RuntimeDirectoryPreserve = v
			case "LimitNOFILE":
				s.LimitNOFILE = v
			case "StandardOutput":
				s.StandardOutput = v
			case "StandardError":
				s.StandardError = v
			case "AmbientCapabilities":
				list(&s.AmbientCapabilities, v, true)
			case "UMask":
				s.UMask = parseMode(v, 0022)
				s.hasUMask = true
			case "Nice":
				if n, err := strconv.Atoi(v); err == nil && n >= -20 && n <= 19 {
					s.Nice, s.hasNice = n, true
				}
			case "StartLimitBurst":
				if n, err := strconv.Atoi(v); err == nil {
					u.StartLimitBurst = n
				}
			case "StartLimitInterval", "StartLimitIntervalSec":
				if d, err := parseTimespan(v); err == nil {
					u.StartLimitInterval = d
				}
			}
		}
	}
	if s.Type == "oneshot" && !timeoutStartSet {
		s.TimeoutStartSec = 0 // infinity
	}
}

func parseBool(v string, def bool) bool {
	switch strings.ToLower(v) {
	case "1", "yes", "true", "on", "y", "t":
		return true
	case "0", "no", "false", "off", "n", "f":
		return false
	}
	return def
}

func parseMode(v string, def os.FileMode) os.FileMode {
	n, err := strconv.ParseUint(v, 8, 32)
	if err != nil {
		return def
	}
	return os.FileMode(n) & 07777
}

// parseTimespan parses a systemd time span: "90", "1min 30s", "500ms",
// "infinity" (0, meaning no limit).
func parseTimespan(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if v == "infinity" {
		return 0, nil
	}
	if v == "" {
		return 0, errors.New("empty time span")
	}
	units := []struct {
		s string
		d time.Duration
	}{
		{"usec", time.Microsecond}, {"us", time.Microsecond}, {"µs", time.Microsecond},
		{"msec", time.Millisecond}, {"ms", time.Millisecond},
		{"seconds", time.Second}, {"second", time.Second}, {"sec", time.Second}, {"s", time.Second},
		{"minutes", time.Minute}, {"minute", time.Minute}, {"min", time.Minute}, {"m", time.Minute},
		{"hours", time.Hour}, {"hour", time.Hour}, {"hr", time.Hour}, {"h", time.Hour},
		{"days", 24 * time.Hour}, {"day", 24 * time.Hour}, {"d", 24 * time.Hour},
		{"weeks", 7 * 24 * time.Hour}, {"week", 7 * 24 * time.Hour}, {"w", 7 * 24 * time.Hour},
	}
	var total time.Duration
	rest := v
	for rest != "" {
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" {
			break
		}
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("bad time span %q", v)
		}
		num, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil || num < 0 || num > 1e12 {
			return 0, fmt.Errorf("bad time span %q", v)
		}
		rest = strings.TrimLeft(rest[i:], " \t")
		unit := time.Second
		for _, un := range units {
			if strings.HasPrefix(rest, un.s) {
				after := rest[len(un.s):]
				if after == "" || after[0] == ' ' || after[0] == '\t' || (after[0] >= '0' && after[0] <= '9') {
					unit = un.d
					rest = after
					break
				}
			}
		}
		total += time.Duration(num * float64(unit))
	}
	return total, nil
}
