package pop3

import (
	"errors"
	"strings"
)

// Command is one parsed client command line.
type Command struct {
	// Name is the keyword in upper case.
	Name string
	// Args are the space-separated arguments.
	Args []string
	// Rest is everything after the keyword and one space, verbatim; PASS
	// uses it because passwords may contain spaces.
	Rest string
}

// Parse errors.
var (
	ErrEmptyCommand = errors.New("empty command")
	ErrBadKeyword   = errors.New("malformed command keyword")
	ErrBadArgument  = errors.New("malformed argument")
)

// MaxArgs bounds the arguments of a command; no POP3 command takes more
// than two.
const MaxArgs = 4

// ParseCommand parses a command line without its CRLF.
func ParseCommand(line string) (Command, error) {
	if line == "" {
		return Command{}, ErrEmptyCommand
	}
	for i := 0; i < len(line); i++ {
		if c := line[i]; c < 0x20 || c == 0x7f {
			return Command{}, ErrBadArgument
		}
	}
	name, rest, _ := strings.Cut(line, " ")
	if len(name) < 3 || len(name) > 4 {
		return Command{}, ErrBadKeyword
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return Command{}, ErrBadKeyword
		}
	}
	cmd := Command{Name: strings.ToUpper(name), Rest: rest}
	if rest != "" {
		cmd.Args = strings.Fields(rest)
		if len(cmd.Args) > MaxArgs {
			return Command{}, ErrBadArgument
		}
	}
	return cmd, nil
}
