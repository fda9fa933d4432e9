package maildir

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func TestExportImportKeepsUIDsAndFlags(t *testing.T) {
	src := openTestAccount(t, t.TempDir())
	in := src.Inbox()
	for i := 0; i < 3; i++ {
		deliver(t, in, fmt.Sprintf("m%d\r\n", i))
	}
	in.Messages()
	in.Expunge([]uint32{1})
	in.SetFlags([]uint32{2}, FlagsAdd, "S", []string{"work"})
	src.CreateMailbox("Archive")
	arch, _ := src.Mailbox("Archive")
	in.Copy([]uint32{3}, arch)
	src.Subscribe("Archive", true)
	src.SetQuota(Quota{MaxBytes: 12345})
	stIn, _ := in.Status()
	stArch, _ := arch.Status()

	var buf bytes.Buffer
	if err := src.store.ExportAccount(src.Address, &buf); err != nil {
		t.Fatal(err)
	}
	dstStore, _ := Open(t.TempDir(), "other")
	if err := dstStore.ImportAccount(src.Address, bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	dst, err := dstStore.Account(src.Address)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := dst.Inbox().Messages()
	if err != nil || len(msgs) != 2 || msgs[0].UID != 2 || msgs[0].Flags != "S" || len(msgs[0].Keywords) != 1 || msgs[1].UID != 3 {
		t.Fatalf("imported INBOX: %+v %v", msgs, err)
	}
	st, _ := dst.Inbox().Status()
	if st.UIDValidity != stIn.UIDValidity || st.UIDNext != stIn.UIDNext {
		t.Fatalf("INBOX status %+v, was %+v", st, stIn)
	}
	a2, err := dst.Mailbox("Archive")
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := a2.Status(); st.UIDValidity != stArch.UIDValidity || st.Messages != 1 {
		t.Fatalf("Archive status %+v, was %+v", st, stArch)
	}
	if subs, _ := dst.Subscriptions(); !subs["Archive"] {
		t.Fatal("subscription lost")
	}
	if dst.Quota().MaxBytes != 12345 {
		t.Fatal("quota lost")
	}
	// A second import over an account with mail is refused.
	if err := dstStore.ImportAccount(src.Address, bytes.NewReader(buf.Bytes())); !errors.Is(err, ErrAccountExists) {
		t.Fatalf("second import: %v", err)
	}
}

func TestImportRefusesUnsafePaths(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "../../evil", Mode: 0o600, Size: 1, Typeflag: tar.TypeReg})
	tw.Write([]byte("x"))
	tw.Close()
	st, _ := Open(t.TempDir(), "x")
	if err := st.ImportAccount("a@example.org", &buf); err == nil {
		t.Fatal("unsafe path accepted")
	}
	buf.Reset()
	tw = tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "cur", Typeflag: tar.TypeSymlink, Linkname: "/etc"})
	tw.Close()
	if err := st.ImportAccount("a@example.org", &buf); err == nil {
		t.Fatal("symlink accepted")
	}
}
