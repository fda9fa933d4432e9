package pop3

import (
	"bufio"
	"errors"
	"strings"

	"github.com/mailfleet/mailfleet/runtime/proxy/crlf"
)

// DefaultMaxLine bounds a command line. RFC 2449 allows 255 octets; an
// AUTH PLAIN initial response of long credentials needs more.
const DefaultMaxLine = 1024

// ErrLineTooLong ends a session.
var ErrLineTooLong = crlf.ErrTooLong

// ErrSyntax is a line that is no command; the session may go on.
var ErrSyntax = errors.New("pop3: syntax error")

// Command is one command line.
type Command struct {
	Name string // upper case
	// Rest is everything after the keyword and its space, verbatim (PASS
	// takes it whole: passwords may hold spaces).
	Rest string
	// Args is Rest split at single spaces.
	Args []string
}

// ReadLine reads one line without its CRLF (a bare LF is accepted).
func ReadLine(br *bufio.Reader, max int) (string, error) {
	if max <= 0 {
		max = DefaultMaxLine
	}
	line, err := crlf.ReadLine(br, max)
	return string(line), err
}

// ParseCommand parses a command line.
func ParseCommand(line string) (Command, error) {
	for i := 0; i < len(line); i++ {
		if c := line[i]; c < 0x20 || c == 0x7f {
			return Command{}, ErrSyntax
		}
	}
	name, rest, _ := strings.Cut(line, " ")
	if len(name) < 3 || len(name) > 4 {
		return Command{}, ErrSyntax
	}
	for i := 0; i < len(name); i++ {
		if c := name[i] | 0x20; c < 'a' || c > 'z' {
			return Command{}, ErrSyntax
		}
	}
	cmd := Command{Name: strings.ToUpper(name), Rest: rest}
	if rest != "" {
		cmd.Args = strings.Split(rest, " ")
		if len(cmd.Args) > 8 {
			return Command{}, ErrSyntax
		}
	}
	return cmd, nil
}
