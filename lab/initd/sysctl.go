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
	"strings"
)

// procSys is where the shim reads and writes.
var procSys = "/proc/sys"

// globalNetKeys are net.* keys that are not per network namespace: on this
// kind of machine (kernel 6.x) a child namespace does not have them, or has
// them read-only. Checked by listing /proc/sys/net in the initial and in a
// new network namespace (see sysctl_test.go).
var globalNetKeys = map[string]bool{
	"net.core.bpf_jit_enable": true, "net.core.bpf_jit_harden": true, "net.core.bpf_jit_kallsyms": true,
	"net.core.bpf_jit_limit": true, "net.core.busy_poll": true, "net.core.busy_read": true,
	"net.core.default_qdisc": true, "net.core.dev_weight": true, "net.core.dev_weight_rx_bias": true,
	"net.core.dev_weight_tx_bias": true, "net.core.devconf_inherit_init_net": true,
	"net.core.fb_tunnels_only_for_init_net": true, "net.core.flow_limit_cpu_bitmap": true,
	"net.core.flow_limit_table_len": true, "net.core.gro_normal_batch": true,
	"net.core.high_order_alloc_disable": true, "net.core.max_skb_frags": true, "net.core.mem_pcpu_rsv": true,
	"net.core.message_burst": true, "net.core.message_cost": true, "net.core.netdev_budget": true,
	"net.core.netdev_budget_usecs": true, "net.core.netdev_max_backlog": true, "net.core.netdev_rss_key": true,
	"net.core.netdev_tstamp_prequeue": true, "net.core.netdev_unregister_timeout_secs": true,
	"net.core.rps_sock_flow_entries": true, "net.core.skb_defer_max": true, "net.core.warnings": true,
	"net.core.rmem_default": true, "net.core.rmem_max": true, "net.core.wmem_default": true,
	"net.core.wmem_max":                true,
	"net.ipv4.cipso_cache_bucket_size": true, "net.ipv4.cipso_cache_enable": true,
	"net.ipv4.cipso_rbm_optfmt": true, "net.ipv4.cipso_rbm_strictvalid": true, "net.ipv4.fib_sync_mem": true,
	"net.ipv4.inet_peer_maxttl": true, "net.ipv4.inet_peer_minttl": true, "net.ipv4.inet_peer_threshold": true,
	"net.ipv4.ipfrag_secret_interval": true, "net.ipv4.tcp_available_ulp": true, "net.ipv4.tcp_low_latency": true,
	"net.ipv4.tcp_max_orphans": true, "net.ipv4.tcp_mem": true, "net.ipv4.udp_mem": true,
	"net.ipv4.tcp_allowed_congestion_control": true, "net.ipv4.tcp_available_congestion_control": true,
	"net.ipv4.tcp_ehash_entries": true, "net.ipv4.udp_hash_entries": true,
	"net.ipv6.calipso_cache_bucket_size": true, "net.ipv6.calipso_cache_enable": true,
	"net.ipv6.ip6frag_secret_interval": true, "net.ipv6.mld_max_msf": true, "net.ipv6.mld_qrv": true,
	"net.ipv4.route.error_burst": true, "net.ipv4.route.error_cost": true, "net.ipv4.route.gc_elasticity": true,
	"net.ipv4.route.gc_interval": true, "net.ipv4.route.gc_min_interval": true,
	"net.ipv4.route.gc_min_interval_ms": true, "net.ipv4.route.gc_thresh": true, "net.ipv4.route.gc_timeout": true,
	"net.ipv4.route.max_size": true, "net.ipv4.route.redirect_load": true, "net.ipv4.route.redirect_number": true,
	"net.ipv4.route.redirect_silence": true,
	"net.netfilter.nf_log_all_netns":  true, "net.nf_conntrack_max": true,
	"net.netfilter.nf_conntrack_max": true, "net.netfilter.nf_conntrack_buckets": true,
	"net.netfilter.nf_conntrack_expect_max": true,
}

// globalNetPrefixes: whole subtrees that are global.
var globalNetPrefixes = []string{}

// inInitialNetns reports whether this process shares the machine's network
// namespace (then even net.* keys are machine-wide). PID 1's namespace
// link may be unreadable; kernel threads (PID 2) live in the initial one.
func inInitialNetns() bool {
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return true
	}
	for _, p := range []string{"/proc/2/ns/net", "/proc/1/ns/net"} {
		if init, err := os.Readlink(p); err == nil {
			return init == self
		}
	}
	return true // cannot tell: assume the worst
}

// machineWide reports whether writing key would change the whole machine.
func machineWide(key string, initialNetns bool) bool {
	if !strings.HasPrefix(key, "net.") || initialNetns {
		return true
	}
	if globalNetKeys[key] {
		return true
	}
	for _, p := range globalNetPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// keyPath maps a dotted (or slashed) key to its /proc/sys file. With
// slashes, dots are part of names (interface names like eth0.100).
func keyPath(key string) string {
	if strings.Contains(key, "/") {
		return filepath.Join(procSys, strings.TrimPrefix(key, "/"))
	}
	return filepath.Join(procSys, strings.ReplaceAll(key, ".", "/"))
}

// canonicalKey turns "net/ipv4/ip_forward" into "net.ipv4.ip_forward".
func canonicalKey(key string) string {
	if strings.Contains(key, "/") {
		parts := strings.Split(strings.Trim(key, "/"), "/")
		return strings.Join(parts, ".")
	}
	return key
}

// Sysctl is `mailfleet lab sysctl ARGS…`, the lab's sysctl: -p [FILE…],
// --system, -w KEY=VALUE…, KEY=VALUE, KEY (read), -n, -q, -e, -a. Only keys
// of the node's own network namespace are written (via /proc/sys);
// machine-wide keys are reported on stderr and skipped. Exit 0 when every
// writable key was written, 1 otherwise (255 for usage errors).
func Sysctl(args []string) int {
	return sysctlRun(args, os.Stdout, os.Stderr)
}

func sysctlRun(args []string, stdout, stderr io.Writer) int {
	var quiet, valuesOnly, ignoreUnknown, load, system, write, all bool
	var words []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			words = append(words, a)
			continue
		}
		if strings.HasPrefix(a, "--") {
			switch {
			case a == "--quiet":
				quiet = true
			case a == "--values":
				valuesOnly = true
			case a == "--ignore":
				ignoreUnknown = true
			case a == "--system":
				system = true
			case a == "--write":
				write = true
			case a == "--all":
				all = true
			case strings.HasPrefix(a, "--load"):
				load = true
				if _, v, ok := strings.Cut(a, "="); ok {
					words = append(words, v)
				}
			default:
				fmt.Fprintf(stderr, "sysctl: unrecognized option '%s'\n", a)
				return 255
			}
			continue
		}
		for j := 1; j < len(a); j++ {
			switch a[j] {
			case 'q':
				quiet = true
			case 'n':
				valuesOnly = true
			case 'e':
				ignoreUnknown = true
			case 'w':
				write = true
			case 'a', 'A', 'X':
				all = true
			case 'N', 'b':
			case 'p', 'f':
				load = true
				if j+1 < len(a) {
					words = append(words, a[j+1:])
					j = len(a)
				}
			default:
				fmt.Fprintf(stderr, "sysctl: invalid option -- '%c'\n", a[j])
				return 255
			}
		}
	}
	s := &sysctlShim{stdout: stdout, stderr: stderr, quiet: quiet, valuesOnly: valuesOnly,
		ignoreUnknown: ignoreUnknown, initial: inInitialNetns()}
	switch {
	case system:
		for _, f := range systemFiles() {
			if !quiet {
				fmt.Fprintf(stdout, "* Applying %s ...\n", f)
			}
			s.loadFile(f)
		}
	case load:
		if len(words) == 0 {
			words = []string{"/etc/sysctl.conf"}
		}
		for _, f := range words {
			s.loadFile(f)
		}
	case all:
		s.readAll()
	case len(words) == 0:
		fmt.Fprintf(stderr, "sysctl: no variables specified\nTry `sysctl --help' for more information.\n")
		return 255
	default:
		for _, w := range words {
			if k, v, ok := strings.Cut(w, "="); ok {
				s.set(strings.TrimSpace(k), strings.TrimSpace(v), false)
			} else if write {
				fmt.Fprintf(stderr, "sysctl: \"%s\" must be of the form name=value\n", w)
				s.failed = true
			} else {
				s.read(w)
			}
		}
	}
	if s.failed {
		return 1
	}
	return 0
}

type sysctlShim struct {
	stdout, stderr                   io.Writer
	quiet, valuesOnly, ignoreUnknown bool
	initial                          bool
	failed                           bool
}

func (s *sysctlShim) read(key string) {
	data, err := os.ReadFile(keyPath(key))
	if err != nil {
		if !s.ignoreUnknown {
			fmt.Fprintf(s.stderr, "sysctl: cannot stat %s: %s\n", keyPath(key), errText(err))
			s.failed = true
		}
		return
	}
	v := strings.ReplaceAll(strings.TrimRight(string(data), "\n"), "\n", " ")
	if s.valuesOnly {
		fmt.Fprintln(s.stdout, v)
	} else {
		fmt.Fprintf(s.stdout, "%s = %s\n", canonicalKey(key), v)
	}
}

func (s *sysctlShim) readAll() {
	var keys []string
	filepath.WalkDir(procSys, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil && fi.Mode()&0444 != 0 {
				keys = append(keys, strings.ReplaceAll(strings.TrimPrefix(p, procSys+"/"), "/", "."))
			}
		}
		return nil
	})
	sort.Strings(keys)
	ig := s.ignoreUnknown
	s.ignoreUnknown = true
	for _, k := range keys {
		s.read(k)
	}
	s.ignoreUnknown = ig
}

// set writes one key unless it is machine-wide. lenient (a "-" prefix in a
// file) turns errors into nothing.
func (s *sysctlShim) set(key, value string, lenient bool) {
	ck := canonicalKey(key)
	if machineWide(ck, s.initial) {
		fmt.Fprintf(s.stderr, "sysctl: %s is machine-wide; skipped in the lab\n", ck)
		return
	}
	p := keyPath(key)
	if _, err := os.Stat(p); err != nil {
		if !lenient && !s.ignoreUnknown {
			fmt.Fprintf(s.stderr, "sysctl: cannot stat %s: %s\n", p, errText(err))
			s.failed = true
		}
		return
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(value)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		if !lenient {
			fmt.Fprintf(s.stderr, "sysctl: setting key \"%s\": %s\n", ck, errText(err))
			s.failed = true
		}
		return
	}
	if s.quiet {
		return
	}
	if s.valuesOnly {
		fmt.Fprintln(s.stdout, value)
	} else {
		fmt.Fprintf(s.stdout, "%s = %s\n", ck, value)
	}
}

func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	s := err.Error()
	if s != "" {
		s = strings.ToUpper(s[:1]) + s[1:]
	}
	return s
}

// loadFile applies a sysctl.conf file: "key = value" lines, # and ;
// comments, a leading "-" ignores a failure.
func (s *sysctlShim) loadFile(path string) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
	} else {
		data, err = readLimited(path)
	}
	if err != nil {
		fmt.Fprintf(s.stderr, "sysctl: cannot open \"%s\": %s\n", path, errText(err))
		s.failed = true
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		lenient := strings.HasPrefix(line, "-")
		line = strings.TrimPrefix(line, "-")
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			fmt.Fprintf(s.stderr, "sysctl: %s: line without '=': %q\n", path, line)
			continue
		}
		k = strings.TrimSpace(k)
		if strings.ContainsAny(k, "*?[") {
			// globs: not needed by the lab
			fmt.Fprintf(s.stderr, "sysctl: %s: glob %s not supported; skipped\n", path, k)
			continue
		}
		s.set(k, strings.TrimSpace(v), lenient)
	}
}

// systemFiles lists what `sysctl --system` reads, as procps does.
func systemFiles() []string {
	dirs := []string{"/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d"}
	chosen := map[string]string{}
	for i := len(dirs) - 1; i >= 0; i-- {
		ents, _ := os.ReadDir(dirs[i])
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".conf") {
				chosen[e.Name()] = filepath.Join(dirs[i], e.Name())
			}
		}
	}
	names := make([]string, 0, len(chosen))
	for n := range chosen {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []string
	for _, n := range names {
		out = append(out, chosen[n])
	}
	if _, err := os.Stat("/etc/sysctl.conf"); err == nil {
		out = append(out, "/etc/sysctl.conf")
	}
	return out
}
