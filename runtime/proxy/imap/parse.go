package imap

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/mailfleet/mailfleet/runtime/proxy/crlf"
)

// Limits of the pre-authentication phase: nothing before login needs more
// than a user name and a password.
const (
	DefaultMaxLine    = 8192
	DefaultMaxLiteral = 4096
	maxArgs           = 32
)

// Command is one pre-authentication command line.
type Command struct {
	Tag  string
	Name string // upper case
	// Args are the arguments as strings (atoms, quoted strings and literals
	// decoded; "(" and ")" of a list are arguments of their own; NIL is the
	// atom "NIL").
	Args []string
}

// ErrLineTooLong ends a session: the rest of the line cannot be told from
// the next command.
var ErrLineTooLong = crlf.ErrTooLong

// SyntaxError is a malformed command; the line was consumed, so the session
// may go on after a BAD.
type SyntaxError struct {
	Tag string // "*" when no tag could be read
	Msg string
}

func (e *SyntaxError) Error() string { return "imap: " + e.Msg }

// Reader reads pre-authentication commands.
type Reader struct {
	br *bufio.Reader
	// MaxLine and MaxLiteral bound a line and the literals of a command.
	// Zero: DefaultMaxLine, DefaultMaxLiteral.
	MaxLine, MaxLiteral int
	// Continue is called before reading a synchronizing literal; it
	// writes the "+" continuation request. Nil: none is written.
	Continue func() error
}

// NewReader returns a Reader on br.
func NewReader(br *bufio.Reader) *Reader { return &Reader{br: br} }

// ReadLine reads one line without its CRLF (a bare LF is accepted).
func (r *Reader) ReadLine() ([]byte, error) {
	max := r.MaxLine
	if max <= 0 {
		max = DefaultMaxLine
	}
	return crlf.ReadLine(r.br, max)
}

func isAtomChar(c byte) bool {
	switch c {
	case '(', ')', '{', ' ', '%', '*', '"', '\\', ']':
		return false
	}
	return c > 0x20 && c < 0x7f
}

// ReadCommand reads one command, literals included.
func (r *Reader) ReadCommand() (*Command, error) {
	line, err := r.ReadLine()
	if err != nil {
		return nil, err
	}
	cmd := &Command{Tag: "*"}
	i := 0
	for i < len(line) && isAtomChar(line[i]) && line[i] != '+' {
		i++
	}
	if i == 0 || i >= len(line) || line[i] != ' ' {
		return nil, r.badLine(line, cmd, "missing tag or command")
	}
	cmd.Tag = string(line[:i])
	line = line[i+1:]
	i = 0
	for i < len(line) && isAtomChar(line[i]) {
		i++
	}
	if i == 0 {
		return nil, r.badLine(line, cmd, "missing command")
	}
	cmd.Name = strings.ToUpper(string(line[:i]))
	line = line[i:]
	literalBytes := 0
	for {
		if len(line) == 0 {
			return cmd, nil
		}
		if line[0] == ' ' {
			line = line[1:]
		} else if line[0] != '(' && line[0] != ')' && (len(cmd.Args) == 0 || cmd.Args[len(cmd.Args)-1] != "(") {
			return nil, r.badLine(line, cmd, "expected a space between arguments")
		}
		if len(line) == 0 {
			return nil, &SyntaxError{Tag: cmd.Tag, Msg: "trailing space"}
		}
		if len(cmd.Args) >= maxArgs {
			return nil, r.badLine(line, cmd, "too many arguments")
		}
		switch c := line[0]; {
		case c == '(' || c == ')':
			cmd.Args = append(cmd.Args, string(c))
			line = line[1:]
		case c == '"':
			s, rest, ok := quoted(line)
			if !ok {
				return nil, &SyntaxError{Tag: cmd.Tag, Msg: "bad quoted string"}
			}
			cmd.Args = append(cmd.Args, s)
			line = rest
		case c == '{':
			n, sync, ok := literalHeader(line)
			if !ok {
				return nil, &SyntaxError{Tag: cmd.Tag, Msg: "bad literal"}
			}
			max := r.MaxLiteral
			if max <= 0 {
				max = DefaultMaxLiteral
			}
			if literalBytes += n; literalBytes > max {
				// The client waits for "+" (or sends the literal anyway
				// with LITERAL+, which the proxy does not announce): the
				// session cannot go on in step.
				return nil, ErrLineTooLong
			}
			if sync && r.Continue != nil {
				if err := r.Continue(); err != nil {
					return nil, err
				}
			}
			buf := make([]byte, n)
			if _, err := io.ReadFull(r.br, buf); err != nil {
				return nil, err
			}
			cmd.Args = append(cmd.Args, string(buf))
			if line, err = r.ReadLine(); err != nil {
				return nil, err
			}
		default:
			j := 0
			for j < len(line) && line[j] != ' ' && line[j] != '(' && line[j] != ')' && line[j] != '"' && line[j] != '{' {
				if line[j] < 0x20 || line[j] == 0x7f {
					return nil, &SyntaxError{Tag: cmd.Tag, Msg: "control character in argument"}
				}
				j++
			}
			cmd.Args = append(cmd.Args, string(line[:j]))
			line = line[j:]
		}
	}
}

// badLine is a syntax error for a line whose literal, if it announced one,
// has not been read: a synchronizing literal's client waits for "+" and
// sends nothing, so the next line is a new command.
func (r *Reader) badLine(_ []byte, cmd *Command, msg string) error {
	return &SyntaxError{Tag: cmd.Tag, Msg: msg}
}

// quoted decodes a quoted string at the start of s.
func quoted(s []byte) (string, []byte, bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], true
		case '\\':
			if i+1 >= len(s) || (s[i+1] != '\\' && s[i+1] != '"') {
				return "", nil, false
			}
			i++
			b.WriteByte(s[i])
		case '\r', '\n', 0:
			return "", nil, false
		default:
			b.WriteByte(c)
		}
	}
	return "", nil, false
}

// literalHeader parses "{N}" or "{N+}", which must end the line.
func literalHeader(s []byte) (n int, sync bool, ok bool) {
	if len(s) < 3 || s[len(s)-1] != '}' {
		return 0, false, false
	}
	body := s[1 : len(s)-1]
	sync = true
	if len(body) > 0 && body[len(body)-1] == '+' {
		sync = false
		body = body[:len(body)-1]
	}
	if len(body) == 0 || len(body) > 10 {
		return 0, false, false
	}
	for _, c := range body {
		if c < '0' || c > '9' {
			return 0, false, false
		}
	}
	v, err := strconv.Atoi(string(body))
	if err != nil {
		return 0, false, false
	}
	return v, sync, true
}

// Quote renders s as an IMAP quoted string, or as a literal when it cannot
// be quoted.
func Quote(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\r' || c == '\n' || c == 0 || c >= 0x80 {
			return fmt.Sprintf("{%d}\r\n%s", len(s), s)
		}
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
