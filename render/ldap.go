package render

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/mailfleet/mailfleet/internal/ssha"
	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/templates"
)

// Where the directory's files go on every directory node.
const (
	slapdConfPath = "/etc/ldap/slapd.conf"
	ldapBaseLDIF  = "/etc/mailfleet/ldap-base.ldif"
	// ldapAdminSecret holds the admin DN's password in clear (0600 root),
	// for ldapadd -y: never on a command line.
	ldapAdminSecret = daemonSecretDir + "/ldap-admin"
	// ldapBaseWait is how long "load ldap base" waits for the directory to
	// answer on its VIP (the cluster starts slapd after the CIB load).
	ldapBaseWait   = 180
	slapdSchemaDir = "/etc/ldap/schema"
	slapdRunDir    = "/run/slapd"
	slapdModuleDir = "/usr/lib/ldap"
	// slapdMaxSize is the most the MDB database may grow to: address space,
	// not disk, so it can be generous (10 GiB).
	slapdMaxSize = 10 << 30
	// slapdSimpleBindSSF is the security strength a simple bind needs when
	// the directory uses TLS: slapd gives the local ldapi:/// socket 71, TLS
	// 128 or more, plain TCP 0. So no password crosses the network in clear,
	// and local tools still bind.
	slapdSimpleBindSSF = 71
)

var slapdDefaultSchemas = []string{"core", "cosine", "inetorgperson", "misc"}

// restartSlapdAction: slapd runs under Pacemaker (ocf:heartbeat:slapd) on
// one directory node at a time, so neither systemctl nor a restart on every
// node would be right. Every directory node gets the changed file; the one
// where the cluster runs slapd asks Pacemaker to restart that primitive
// alone (the last of its group, so the file system and the VIP stay).
// Elsewhere, and before the cluster runs at all, it does nothing: slapd reads
// the new file when it next starts.
func restartSlapdAction(d *spec.Directory) *Action {
	rsc := slapdResourceID(d)
	return &Action{Name: "restart slapd",
		Command: "if " + runsHere(rsc) + "; then " +
			`crm_resource --restart --resource ` + rsc + ` --timeout 120s; fi`,
		Order: OrderDaemon}
}

// loadLDAPBaseAction adds the base LDIF's entries to the running directory,
// once: every directory node gets it (the file changes on all of them at
// once), waits until the directory answers an anonymous base search on its
// VIP (0, or 32 while the base entry does not exist yet), and then only the
// node where the cluster runs slapd adds the entries, over the local
// ldapi:/// socket (where a simple bind is allowed whatever the TLS mode),
// bound as the admin DN with the password read from a 0600 file. Entries
// that exist already are left as they are ("Already exists", 68, is
// success), so the action is idempotent and never overwrites what the
// directory holds: a changed service password is not applied by it.
func loadLDAPBaseAction(d *spec.Directory) *Action {
	rsc := slapdResourceID(d)
	search := "ldapsearch -x -o nettimeout=5 -H " + shQuote(d.URL())
	if d.TLSMode == spec.LDAPTLSStartTLS {
		search += " -ZZ"
	}
	search += " -b " + shQuote(d.Base) + " -s base -LLL dn"
	if d.TLSMode != spec.LDAPTLSNone && d.TLS != nil && d.TLS.CA != "" {
		search = "LDAPTLS_CACERT=" + shQuote(d.TLS.CA) + " " + search
	}
	add := "ldapadd -x -c -H ldapi:/// -D " + shQuote(d.AdminDN) + " -y " + ldapAdminSecret + " -f " + ldapBaseLDIF
	cmd := "end=$(($(date +%s)+" + fmt.Sprint(ldapBaseWait) + ")); " +
		"until " + search + " >/dev/null 2>&1; rc=$?; [ $rc -eq 0 ] || [ $rc -eq 32 ]; do " +
		"if [ $(date +%s) -ge $end ]; then echo " + shQuote("directory "+d.Name+" does not answer on "+d.URL()) + " >&2; exit 1; fi; " +
		"sleep 1; done; " +
		"if " + runsHere(rsc) + "; then " +
		"out=$(" + add + " 2>&1 >/dev/null); rc=$?; " +
		`if [ $rc -ne 0 ] && { [ $rc -ne 68 ] || printf '%s\n' "$out" | grep '^ldap_add: ' | grep -qv 'Already exists (68)'; }; then ` +
		`printf '%s\n' "$out" >&2; exit $rc; fi; fi`
	return &Action{Name: "load ldap base", Command: cmd, Order: OrderLDAPBase}
}

// shQuote quotes s as one word for /bin/sh.
func shQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@,+%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// renderLDAP writes slapd's configuration and the directory's first entries
// on every directory node.
func renderLDAP(b *builder) error {
	d := b.t.Directory
	if d == nil || len(d.Nodes) == 0 {
		return nil
	}
	conf, err := slapdConf(b, d)
	if err != nil {
		return fmt.Errorf("directory %s: %w", d.Name, err)
	}
	ldif, err := ldapBaseEntries(b, d)
	if err != nil {
		return fmt.Errorf("directory %s: %w", d.Name, err)
	}
	for _, n := range d.Nodes {
		h := b.host(n.Name)
		if setup := slapdDataSetup(d); setup != "" {
			h.addSetup(setup)
		}
		h.addRole("directory")
		// ldap-utils: the slapd agent monitors with ldapsearch.
		h.addPackages("slapd", "ldap-utils")
		if err := addOCFAgents(b, n.Name, nil, "mount", "vip"); err != nil {
			return err
		}
		if err := b.add(n.Name, &File{Path: slapdConfPath, Mode: 0o640, Owner: "root", Group: "openldap",
			Content: conf, Sensitive: true, Actions: []*Action{restartSlapdAction(d)}}); err != nil {
			return err
		}
		if err := b.add(n.Name, &File{Path: ldapBaseLDIF, Mode: 0o600, Content: ldif, Sensitive: true,
			Actions: []*Action{loadLDAPBaseAction(d)}}); err != nil {
			return err
		}
		if err := b.add(n.Name, &File{Path: ldapAdminSecret, Mode: 0o600, Owner: "root", Group: "root",
			Content: []byte(clusterSecretValue(d.AdminPassword)), Sensitive: true}); err != nil {
			return err
		}
	}
	return nil
}

// slapdDataSetup: slapd opens its database as the openldap user, so the
// data directory must be that user's. A bind-mounted data partition (fstype
// none) is a directory every directory node sees, so setup gives it to
// openldap on every apply (once the slapd package has made the user); the
// root of a block device's file system is for the admin to hand over when
// making it (mkfs, then chown openldap:openldap its root). "" when there is
// nothing to do.
func slapdDataSetup(d *spec.Directory) string {
	if d.Data == nil || d.Data.FSType != "none" || d.Data.Device == "" {
		return ""
	}
	dev := shQuote(d.Data.Device)
	return "if [ -d " + dev + " ] && getent passwd openldap >/dev/null; then chown openldap:openldap " + dev + "; fi"
}

func slapdConf(b *builder, d *spec.Directory) ([]byte, error) {
	schemas := d.Schemas
	if len(schemas) == 0 {
		schemas = slapdDefaultSchemas
	}
	v := templates.Slapd{
		Header: []string{"generated by mailfleet, do not edit",
			"slapd of the directory " + d.Name + ". Pacemaker runs it (ocf:heartbeat:slapd)",
			"on one directory node at a time, on the VIP, with the database on the",
			"shared partition mounted at " + ldapDataDir(d) + "."},
		PidFile:    slapdRunDir + "/slapd.pid",
		ArgsFile:   slapdRunDir + "/slapd.args",
		ModulePath: slapdModuleDir,
		MaxSize:    slapdMaxSize,
		Suffix:     templates.SlapdQuote(d.Base),
		RootDN:     templates.SlapdQuote(d.AdminDN),
		RootPW:     ssha.Hash(clusterSecretValue(d.AdminPassword), b.keys.Bytes("ldap/rootpw-salt", 8)),
		DataDir:    ldapDataDir(d),
		Indexes:    []string{"objectClass eq", "uid eq"},
	}
	misc := false
	for _, s := range schemas {
		v.Schemas = append(v.Schemas, slapdSchemaDir+"/"+s+".schema")
		misc = misc || s == "misc"
	}
	if misc {
		// misc.schema defines what the front-ends look accounts up by.
		v.Indexes = append(v.Indexes, "mailLocalAddress eq", "mailHost eq")
	}
	if d.TLS != nil && d.TLS.Cert != "" {
		v.TLS = &templates.SlapdTLS{Cert: d.TLS.Cert, Key: d.TLS.Key, CA: d.TLS.CA}
	}
	if d.TLSMode == spec.LDAPTLSStartTLS || d.TLSMode == spec.LDAPTLSLDAPS {
		v.SimpleBindSSF = slapdSimpleBindSSF
	}
	if d.ServiceDN != "" {
		v.ServiceDN = templates.SlapdQuote(d.ServiceDN)
	}
	return templates.SlapdConf(v)
}

// --- the base LDIF ---

type ldifView struct {
	Base    string
	Entries [][]string // each entry's lines, "dn: …" first
}

// ldapBaseEntries is the directory's skeleton: the base entry, any entry
// between it and the service DN, and the service DN with its password,
// ready for slapadd (or ldapadd) into an empty database.
func ldapBaseEntries(b *builder, d *spec.Directory) ([]byte, error) {
	base, err := ldifParseDN(d.Base)
	if err != nil {
		return nil, fmt.Errorf("base %q: %w", d.Base, err)
	}
	if len(base) == 0 {
		return nil, fmt.Errorf("the base DN is empty")
	}
	v := ldifView{Base: d.Base}
	top := base[0]
	entry := []string{ldifLine("dn", d.Base)}
	switch top.attr {
	case "dc":
		entry = append(entry, "objectClass: dcObject", "objectClass: organization", ldifLine("dc", top.value), ldifLine("o", top.value))
	case "o":
		entry = append(entry, "objectClass: organization", ldifLine("o", top.value))
	case "ou":
		entry = append(entry, "objectClass: organizationalUnit", ldifLine("ou", top.value))
	default:
		return nil, fmt.Errorf("base %q: no entry kind for a %s= base (want dc=, o= or ou=)", d.Base, top.attr)
	}
	v.Entries = append(v.Entries, entry)
	if d.ServiceDN == "" {
		return templates.Execute("ldap-base.ldif.tmpl", v)
	}

	svc, err := ldifParseDN(d.ServiceDN)
	if err != nil {
		return nil, fmt.Errorf("service DN %q: %w", d.ServiceDN, err)
	}
	if len(svc) <= len(base) || !ldifSameRDNs(svc[len(svc)-len(base):], base) {
		return nil, fmt.Errorf("service DN %q is not below the base %q", d.ServiceDN, d.Base)
	}
	// The entries between the base and the service DN, top down.
	for k := len(svc) - len(base) - 1; k >= 1; k-- {
		r := svc[k]
		entry := []string{ldifLine("dn", ldifJoinRDNs(svc[k:]))}
		switch r.attr {
		case "ou":
			entry = append(entry, "objectClass: organizationalUnit", ldifLine("ou", r.value))
		case "o":
			entry = append(entry, "objectClass: organization", ldifLine("o", r.value))
		case "dc":
			entry = append(entry, "objectClass: domain", ldifLine("dc", r.value))
		default:
			return nil, fmt.Errorf("service DN %q: no entry kind for its parent %s= (want ou=, o= or dc=)", d.ServiceDN, r.attr)
		}
		v.Entries = append(v.Entries, entry)
	}
	r := svc[0]
	entry = []string{ldifLine("dn", d.ServiceDN)}
	switch r.attr {
	case "cn":
		entry = append(entry, "objectClass: organizationalRole", "objectClass: simpleSecurityObject", ldifLine("cn", r.value))
	case "uid":
		entry = append(entry, "objectClass: account", "objectClass: simpleSecurityObject", ldifLine("uid", r.value))
	default:
		return nil, fmt.Errorf("service DN %q: no entry kind for a %s= DN (want cn= or uid=)", d.ServiceDN, r.attr)
	}
	entry = append(entry,
		"description: mailfleet service account: looks accounts up, writes nothing",
		ldifLine("userPassword", ssha.Hash(clusterSecretValue(d.ServicePassword), b.keys.Bytes("ldap/servicepw-salt", 8))))
	v.Entries = append(v.Entries, entry)
	return templates.Execute("ldap-base.ldif.tmpl", v)
}

// ldifLine is "attr: value", or "attr:: base64" where RFC 2849 does not let
// the value stand as it is.
func ldifLine(attr, value string) string {
	if ldifSafe(value) {
		return attr + ": " + value
	}
	return attr + ":: " + base64.StdEncoding.EncodeToString([]byte(value))
}

func ldifSafe(s string) bool {
	if s == "" {
		return true
	}
	switch s[0] {
	case ' ', ':', '<':
		return false
	}
	if s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 || c == '\n' || c == '\r' || c >= 0x80 {
			return false
		}
	}
	return true
}

type ldifRDN struct {
	attr  string // lower case
	value string // unescaped
	raw   string // as written
}

// ldifParseDN splits an RFC 4514 DN into its RDNs, leaf first. Multi-valued
// RDNs are refused: no entry made here needs one.
func ldifParseDN(dn string) ([]ldifRDN, error) {
	if strings.TrimSpace(dn) == "" {
		return nil, nil
	}
	var out []ldifRDN
	var raw strings.Builder
	for i := 0; i <= len(dn); i++ {
		if i == len(dn) || dn[i] == ',' {
			r, err := ldifParseRDN(raw.String())
			if err != nil {
				return nil, err
			}
			out = append(out, r)
			raw.Reset()
			continue
		}
		if dn[i] == '\\' && i+1 < len(dn) {
			raw.WriteByte(dn[i])
			i++
		}
		raw.WriteByte(dn[i])
	}
	return out, nil
}

func ldifParseRDN(s string) (ldifRDN, error) {
	s = strings.TrimSpace(s)
	attr, value, ok := strings.Cut(s, "=")
	if !ok || strings.TrimSpace(attr) == "" {
		return ldifRDN{}, fmt.Errorf("%q is not attribute=value", s)
	}
	var v strings.Builder
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch {
		case c == '+':
			return ldifRDN{}, fmt.Errorf("multi-valued RDN %q is not supported", s)
		case c == '\\' && i+2 < len(value) && ldifIsHex(value[i+1]) && ldifIsHex(value[i+2]):
			x, _ := hex.DecodeString(value[i+1 : i+3])
			v.Write(x)
			i += 2
		case c == '\\' && i+1 < len(value):
			v.WriteByte(value[i+1])
			i++
		default:
			v.WriteByte(c)
		}
	}
	return ldifRDN{attr: strings.ToLower(strings.TrimSpace(attr)), value: strings.TrimSpace(v.String()), raw: s}, nil
}

func ldifIsHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// ldifSameRDNs compares RDN lists as the attributes used here compare (dc,
// o, ou, cn, uid: ignoring case).
func ldifSameRDNs(a, b []ldifRDN) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].attr != b[i].attr || !strings.EqualFold(a[i].value, b[i].value) {
			return false
		}
	}
	return true
}

func ldifJoinRDNs(rs []ldifRDN) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.raw
	}
	return strings.Join(parts, ",")
}
