package maildir

import (
	"errors"
	"testing"
)

func TestDomainsAndAccountDeletion(t *testing.T) {
	st, _ := Open(t.TempDir(), "x")
	if _, err := st.Domain("example.org"); !errors.Is(err, ErrNoDomain) {
		t.Fatalf("unknown domain: %v", err)
	}
	if err := st.SetDomain("Example.ORG", DomainSettings{DefaultQuota: Quota{MaxBytes: 1000}, MaxAccounts: 2}); err != nil {
		t.Fatal(err)
	}
	if err := st.SetDomain("../etc", DomainSettings{}); err == nil {
		t.Fatal("bad domain accepted")
	}
	a, err := st.Account("new@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if a.Quota().MaxBytes != 1000 {
		t.Fatalf("default quota not applied: %+v", a.Quota())
	}
	if ds, _ := st.Domains(); len(ds) != 1 || ds[0] != "example.org" {
		t.Fatalf("Domains() = %v", ds)
	}
	if err := st.DeleteDomain("example.org"); !errors.Is(err, ErrDomainNotEmpty) {
		t.Fatalf("delete non-empty domain: %v", err)
	}
	deliver(t, a.Inbox(), "x\r\n")
	if err := st.DeleteAccount("new@example.org"); err != nil {
		t.Fatal(err)
	}
	if st.HasAccount("new@example.org") {
		t.Fatal("account still there")
	}
	if err := st.DeleteDomain("example.org"); err != nil {
		t.Fatal(err)
	}
	if ds, _ := st.Domains(); len(ds) != 0 {
		t.Fatalf("Domains() after delete = %v", ds)
	}
}

// TestSplitAddressASCII: Unicode case mapping never makes an address one
// of ours: U+0130 (İ) would lower-case to "i".
func TestSplitAddressASCII(t *testing.T) {
	for _, a := range []string{"alice@maİlfleet.test", "alİce@mailfleet.test", "alice@mailfleet.test\u212a"} {
		if l, d, err := SplitAddress(a); err == nil {
			t.Errorf("SplitAddress(%q) = %q, %q; want an error", a, l, d)
		}
	}
	if l, d, err := SplitAddress("Alice@MailFleet.TEST"); err != nil || l != "alice" || d != "mailfleet.test" {
		t.Errorf("SplitAddress of an ASCII address: %q %q %v", l, d, err)
	}
}
