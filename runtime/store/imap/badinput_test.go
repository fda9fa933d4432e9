package imap

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestBadInput sends malformed commands, oversized literals, huge lines,
// invalid UTF-8 and traversal in mailbox names; each gets a protocol error
// and the server goes on serving other sessions.
func TestBadInput(t *testing.T) {
	ts := startServer(t)
	ts.deliver(t, "Subject: x\r\n\r\nx\r\n")
	// go-imap's server answers an unknown command before login with BYE
	// and closes the connection (see LIBRARY-NOTES.md).
	pre, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	pr := bufio.NewReader(pre)
	pr.ReadString('\n')
	fmt.Fprint(pre, "a0 FROBNICATE\r\n")
	pre.SetReadDeadline(time.Now().Add(10 * time.Second))
	var last string
	for {
		l, err := pr.ReadString('\n')
		if err != nil {
			break
		}
		last = l
	}
	pre.Close()
	if !strings.Contains(last, "BAD") && !strings.Contains(last, "BYE") {
		t.Fatalf("unknown command before login: last line %q", last)
	}

	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	read := func() string {
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v (%q)", err, l)
		}
		return l
	}
	// until reads lines up to the tagged reply of tag.
	until := func(tag string) string {
		for {
			l := read()
			if strings.HasPrefix(l, tag+" ") {
				return l
			}
		}
	}
	send := func(s string) { fmt.Fprint(conn, s) }
	read() // greeting
	send(`a2 LOGIN "` + user + `" "` + pass + `"` + "\r\n")
	if l := until("a2"); !strings.HasPrefix(l, "a2 OK") {
		t.Fatalf("login: %q", l)
	}
	for i, c := range []string{
		"FROBNICATE",
		"SELECT",
		`CREATE "../../etc"`,
		`CREATE "a/../b"`,
		"CREATE \"bad\xff\xfename\"",
		`CREATE "ctl` + "\x01" + `x"`,
		"FETCH 1:* (FLAGS",
		"UID FETCH x:y FLAGS",
	} {
		tag := fmt.Sprintf("b%d", i)
		send(tag + " " + c + "\r\n")
		if l := until(tag); !strings.HasPrefix(l, tag+" BAD") && !strings.HasPrefix(l, tag+" NO") {
			t.Fatalf("%q: %q", c, l)
		}
	}
	// An oversized literal is refused (APPENDLIMIT); the session goes on.
	send("c1 APPEND INBOX {999999999}\r\n")
	if l := until("c1"); !strings.HasPrefix(l, "c1 NO") && !strings.HasPrefix(l, "c1 BAD") {
		t.Fatalf("oversized literal: %q", l)
	}
	send("c2 NOOP\r\n")
	if l := until("c2"); !strings.HasPrefix(l, "c2 OK") {
		t.Fatalf("NOOP after the oversized literal: %q", l)
	}
	// A huge line ends this session, not the server.
	send("d1 NOOP " + strings.Repeat("x", 200000) + "\r\n")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, err := r.ReadString('\n'); err != nil {
			break
		}
	}
	c2 := loggedIn(t, ts.addr, nil)
	if _, err := c2.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("another session after bad input: %v", err)
	}
}
