package spec

import (
	"strings"

	"github.com/mailfleet/mailfleet/spec/ldapschema"
)

// ldapChecks parses the directory's DNs and every connector's lookup filter
// and checks the attributes they name against the schemas the directory
// loads, read from the schema definitions themselves.
func (v *validator) ldapChecks(d *Directory) {
	schema, err := ldapschema.Load(d.Schemas...)
	if err != nil {
		v.ds.errorf(d.At("schemas"), "Unknown LDAP schema", "%v", err)
		return
	}
	dn := func(attr, value string, r Range) {
		if value == "" {
			return
		}
		for _, p := range ldapschema.CheckDN(schema, value) {
			v.ds.errorf(within(r, value, p.Offset, len(p.Name)), "Invalid LDAP DN", "%s %q: %s", attr, value, problemText(p))
		}
	}
	dn("base", d.Base, d.At("base"))
	dn("admin_dn", d.AdminDN, d.At("admin_dn"))
	dn("service_dn", d.ServiceDN, d.At("service_dn"))
	base := strings.ToLower(d.Base)
	for attr, value := range map[string]string{"admin_dn": d.AdminDN, "service_dn": d.ServiceDN} {
		if value != "" && base != "" && !strings.HasSuffix(strings.ToLower(value), ","+base) {
			v.ds.errorf(d.At(attr), "DN outside the directory", "%s %q is not under the directory's base %q.", attr, value, d.Base)
		}
	}
	for _, c := range v.t.Connectors {
		if c.Base != d.Base {
			dn("base", c.Base, c.At("base"))
		}
		if c.BindDN != d.AdminDN && c.BindDN != d.ServiceDN {
			dn("bind_dn", c.BindDN, c.At("bind_dn"))
		}
		r := c.At("filter")
		if c.Filter == "" {
			continue // missing: already reported
		}
		if !strings.Contains(c.Filter, "%e") && !strings.Contains(c.Filter, "%u") {
			v.ds.errorf(r, "Filter without placeholder", "the lookup filter %q has no %%e (address) or %%u (local part) placeholder, so every account would find the same entries.", c.Filter)
		}
		for _, p := range ldapschema.CheckFilter(schema, c.Filter) {
			v.ds.errorf(within(r, c.Filter, p.Offset, len(p.Name)), "Invalid LDAP filter", "filter %q: %s The directory loads the schemas %s.", c.Filter, problemText(p), strings.Join(d.Schemas, ", "))
		}
		if c.HostAttribute != "" && !schema.HasAttribute(c.HostAttribute) {
			v.ds.errorf(c.At("host_attribute"), "Unknown LDAP attribute", "host_attribute %q is defined in none of the schemas %s.", c.HostAttribute, strings.Join(d.Schemas, ", "))
		}
	}
}

func problemText(p ldapschema.Problem) string {
	s := p.Detail
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

// within narrows r, the range of a string attribute whose value is s, to
// the n bytes at offset inside s. It narrows only when r is a one-line
// quoted literal of exactly s (no escapes, no expression); else it keeps r.
func within(r Range, s string, offset, n int) Range {
	if offset < 0 || r.Line != r.EndLine || r.EndByte-r.Byte != len(s)+2 || offset > len(s) {
		return r
	}
	if n == 0 {
		n = 1
	}
	if offset+n > len(s) {
		n = len(s) - offset
	}
	out := r
	out.Col += 1 + offset
	out.Byte += 1 + offset
	out.EndCol = out.Col + n
	out.EndByte = out.Byte + n
	return out
}
