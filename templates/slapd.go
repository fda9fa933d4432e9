package templates

import "strings"

// Slapd is the view of slapd.conf.tmpl, the one slapd.conf of mailfleet:
// render fills it for a site's directory, `mailfleetd dev` for its own
// slapd, and the tests' slapd harness for theirs, so that all of them run
// the access rules and indexes production gets. The fields go into the
// file as they are: those marked quoted must come through SlapdQuote.
type Slapd struct {
	// Header is the file's opening comment, one line per element.
	Header        []string
	Schemas       []string
	PidFile       string
	ArgsFile      string
	ModulePath    string
	TLS           *SlapdTLS
	SimpleBindSSF int // 0: no security line
	MaxSize       int64
	Suffix        string // quoted
	RootDN        string // quoted
	RootPW        string // a {SSHA} hash
	DataDir       string
	Indexes       []string
	ServiceDN     string // quoted; "" when there is none
}

// SlapdTLS are slapd's certificate, key and CA files (quoted).
type SlapdTLS struct {
	Cert, Key, CA string
}

// SlapdQuote quotes s for slapd.conf, whose parser takes a backslash as an
// escape inside and outside quotes.
func SlapdQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// SlapdConf is slapd.conf for v.
func SlapdConf(v Slapd) ([]byte, error) { return Execute("slapd.conf.tmpl", v) }
