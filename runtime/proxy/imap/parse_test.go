package imap

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadCommand(t *testing.T) {
	for _, tc := range []struct {
		in   string
		tag  string
		name string
		args []string
		err  string
	}{
		{in: "a1 CAPABILITY\r\n", tag: "a1", name: "CAPABILITY"},
		{in: "a1 login alice \"p w\\\"x\\\\\"\r\n", tag: "a1", name: "LOGIN", args: []string{"alice", `p w"x\`}},
		{in: "a2 LOGIN {5}\r\nalice {2+}\r\npw\r\n", tag: "a2", name: "LOGIN", args: []string{"alice", "pw"}},
		{in: "a3 ID (\"name\" \"x\" \"v\" NIL)\r\n", tag: "a3", name: "ID", args: []string{"(", "name", "x", "v", "NIL", ")"}},
		{in: "a4 ID NIL\n", tag: "a4", name: "ID", args: []string{"NIL"}},
		{in: "a5 AUTHENTICATE PLAIN AGEAYg==\r\n", tag: "a5", name: "AUTHENTICATE", args: []string{"PLAIN", "AGEAYg=="}},
		{in: "\r\n", err: "syntax"},
		{in: "a6\r\n", err: "syntax"},
		{in: "+ LOGIN\r\n", err: "syntax"},
		{in: "a7 LOGIN \"unterminated\r\n", err: "syntax"},
		{in: "a8 LOGIN {99999}\r\n", err: "too long"},
		{in: "a9 LOGIN {x}\r\n", err: "syntax"},
		{in: "b1 LOGIN a\x01b c\r\n", err: "syntax"},
		{in: "b2 LOGIN a ", err: "EOF"},
	} {
		r := NewReader(bufio.NewReader(strings.NewReader(tc.in)))
		cmd, err := r.ReadCommand()
		switch {
		case tc.err == "syntax":
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Errorf("%q: %v, want a syntax error", tc.in, err)
			}
		case tc.err == "too long":
			if !errors.Is(err, ErrLineTooLong) {
				t.Errorf("%q: %v, want too long", tc.in, err)
			}
		case tc.err == "EOF":
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("%q: %v, want EOF", tc.in, err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case cmd.Tag != tc.tag || cmd.Name != tc.name || strings.Join(cmd.Args, "|") != strings.Join(tc.args, "|"):
			t.Errorf("%q: %+v", tc.in, cmd)
		}
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{`a"b\c`: `"a\"b\\c"`, "x\r\ny": "{4}\r\nx\r\ny"} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %q", in, got)
		}
	}
}

// FuzzIMAPPreauth reads commands from arbitrary bytes the way the proxy
// does before login: no panic, no argument beyond the limits, a clean tag
// and command name, and progress on every call.
func FuzzIMAPPreauth(f *testing.F) {
	for _, s := range []string{
		"a1 CAPABILITY\r\n", "a2 LOGIN alice \"pw\"\r\n", "a3 LOGIN {5}\r\nalice {2+}\r\npw\r\n",
		"a4 AUTHENTICATE PLAIN AGEAYg==\r\n", "a5 ID (\"name\" \"x\")\r\n", "a6 STARTTLS\r\na7 NOOP\r\n",
		"a8 LOGIN \"a\\\"b\" c\r\n", "* LOGIN x y\r\n", "a9 LOGIN {4294967296}\r\n", "t ID ((()))\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bufio.NewReaderSize(bytes.NewReader(data), 64))
		r.MaxLine, r.MaxLiteral = 256, 128
		for range 1000 {
			cmd, err := r.ReadCommand()
			var se *SyntaxError
			if errors.As(err, &se) {
				continue
			}
			if err != nil {
				return
			}
			if cmd.Tag == "" || strings.ContainsAny(cmd.Tag, " \r\n+(){") || cmd.Name == "" || cmd.Name != strings.ToUpper(cmd.Name) {
				t.Fatalf("bad command %+v", cmd)
			}
			total := 0
			for _, a := range cmd.Args {
				total += len(a)
			}
			if len(cmd.Args) > maxArgs || total > r.MaxLine*4+r.MaxLiteral {
				t.Fatalf("args beyond the limits: %d args, %d bytes", len(cmd.Args), total)
			}
		}
		t.Fatal("no progress after 1000 commands")
	})
}
