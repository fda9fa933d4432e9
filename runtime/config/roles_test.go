package config

import "testing"

// Validate fails exactly when ValidateNode or ValidateInstances does, which
// is what lets a renderer check one instance table once for many nodes.
func TestFrontendValidateSplit(t *testing.T) {
	good := func() *Frontend {
		return &Frontend{
			FormatVersion: FormatVersion,
			Node:          "fe1",
			Admin:         "10.0.0.1:9101",
			IMAP:          &Proxy{Listen: "10.0.0.1:143"},
			LDAP: LDAP{URLs: []string{"ldap://10.0.0.9:389"}, BindDN: "cn=x", BindPasswordFile: "/etc/x",
				Base: "dc=x", Filter: "(uid=%u)", HostAttribute: "mailHost"},
			Instances: map[string]InstanceRoute{
				"a.example": {Name: "a", SMTP: "10.0.1.1:25", IMAP: "10.0.1.1:143"},
				"b.example": {Name: "b", POP3: "10.0.1.2:110", LMTP: "10.0.1.2:24"},
			},
			DefaultRoute: "a.example",
		}
	}
	cases := map[string]func(f *Frontend){
		"good":              func(f *Frontend) {},
		"bad version":       func(f *Frontend) { f.FormatVersion = 99 },
		"no listener":       func(f *Frontend) { f.IMAP = nil },
		"bad admin":         func(f *Frontend) { f.Admin = "nowhere" },
		"bad ldap":          func(f *Frontend) { f.LDAP.URLs = nil },
		"no instances":      func(f *Frontend) { f.Instances = nil; f.DefaultRoute = "" },
		"bad route smtp":    func(f *Frontend) { f.Instances["a.example"] = InstanceRoute{Name: "a", SMTP: "10.0.1.1"} },
		"bad route lmtp":    func(f *Frontend) { f.Instances["b.example"] = InstanceRoute{Name: "b", LMTP: "x:y"} },
		"unknown default":   func(f *Frontend) { f.DefaultRoute = "c.example" },
		"bad trusted":       func(f *Frontend) { f.TrustedBalancers = []string{"10.0.0.0"} },
		"route and default": func(f *Frontend) { f.Instances["a.example"] = InstanceRoute{SMTP: "?"}; f.DefaultRoute = "z" },
	}
	for name, change := range cases {
		f := good()
		change(f)
		whole := f.Validate() == nil
		split := f.ValidateNode() == nil && ValidateInstances(f.Instances) == nil
		if whole != split {
			t.Errorf("%s: Validate ok=%v, ValidateNode and ValidateInstances ok=%v", name, whole, split)
		}
		if (name == "good") != whole {
			t.Errorf("%s: Validate ok=%v", name, whole)
		}
	}
}
