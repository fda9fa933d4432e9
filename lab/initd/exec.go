package initd

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// execLine is one parsed Exec*= line.
type execLine struct {
	IgnoreFailure bool     // "-" prefix
	Argv0Override bool     // "@" prefix: second word is argv[0]
	Privileged    bool     // "+", "!", "!!": run with full privileges (no User=)
	Path          string   // the executable
	Args          []string // argv, unexpanded, Args[0] is argv[0]
}

// parseExecLine splits an Exec*= value into its prefixes and words, with
// systemd's quoting (double and single quotes, C escapes).
func parseExecLine(v string) (execLine, error) {
	var l execLine
	v = strings.TrimSpace(v)
	for len(v) > 0 {
		switch v[0] {
		case '-':
			l.IgnoreFailure = true
		case '@':
			l.Argv0Override = true
		case '+', '!', ':', '|':
			l.Privileged = l.Privileged || v[0] != ':'
		default:
			goto words
		}
		v = v[1:]
	}
words:
	w, err := splitWords(v)
	if err != nil {
		return l, err
	}
	if len(w) == 0 {
		return l, fmt.Errorf("empty command line")
	}
	l.Path = w[0]
	if l.Argv0Override {
		if len(w) < 2 {
			return l, fmt.Errorf("@ prefix without argv[0]")
		}
		l.Args = w[1:]
	} else {
		l.Args = w
	}
	return l, nil
}

// splitWords splits a string into words with systemd's extract_first_word
// rules for command lines: whitespace separates, "…" and '…' quote, backslash
// escapes (\n \t \\ \" \' \xNN \NNN), a backslash at the end is literal.
func splitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '"' || c == '\'':
			inWord = true
			q := c
			i++
			closed := false
			for ; i < len(s); i++ {
				if s[i] == q {
					closed = true
					break
				}
				if s[i] == '\\' && q == '"' && i+1 < len(s) {
					n, adv := unescapeC(s[i+1:])
					cur.WriteString(n)
					i += adv
					continue
				}
				cur.WriteByte(s[i])
			}
			if !closed {
				return nil, fmt.Errorf("unbalanced quote in %q", s)
			}
		case c == '\\' && i+1 < len(s):
			inWord = true
			n, adv := unescapeC(s[i+1:])
			cur.WriteString(n)
			i += adv
		default:
			inWord = true
			cur.WriteByte(c)
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// unescapeC decodes one C escape at the start of s (after the backslash) and
// returns it with the number of bytes consumed.
func unescapeC(s string) (string, int) {
	switch s[0] {
	case 'n':
		return "\n", 1
	case 't':
		return "\t", 1
	case 'r':
		return "\r", 1
	case 'a':
		return "\a", 1
	case 'b':
		return "\b", 1
	case 'f':
		return "\f", 1
	case 'v':
		return "\v", 1
	case 's':
		return " ", 1
	case 'x':
		if len(s) >= 3 {
			if n, err := strconv.ParseUint(s[1:3], 16, 8); err == nil {
				return string([]byte{byte(n)}), 3
			}
		}
	case '0', '1', '2', '3':
		if len(s) >= 3 {
			if n, err := strconv.ParseUint(s[0:3], 8, 8); err == nil {
				return string([]byte{byte(n)}), 3
			}
		}
	}
	return s[:1], 1
}

// expandArgs applies systemd's variable expansion to a command's arguments:
// a word that is exactly "$NAME" becomes the variable's value split at
// whitespace (zero or more words); "${NAME}" anywhere in a word is replaced
// by the exact value; "$$" is a literal "$".
func expandArgs(args []string, env map[string]string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if i > 0 && len(a) > 1 && a[0] == '$' && isVarName(a[1:]) {
			out = append(out, strings.Fields(env[a[1:]])...)
			continue
		}
		out = append(out, expandBraced(a, env))
	}
	return out
}

func expandBraced(s string, env map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '$' && i+1 < len(s) {
			if s[i+1] == '$' {
				b.WriteByte('$')
				i++
				continue
			}
			if s[i+1] == '{' {
				if j := strings.IndexByte(s[i+2:], '}'); j >= 0 && isVarName(s[i+2:i+2+j]) {
					b.WriteString(env[s[i+2:i+2+j]])
					i += 2 + j
					continue
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isVarName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// parseEnvironment parses one Environment= value: quoted assignments
// separated by whitespace.
func parseEnvironment(v string, env map[string]string) {
	words, err := splitWords(v)
	if err != nil {
		return
	}
	for _, w := range words {
		if k, val, ok := strings.Cut(w, "="); ok && isVarName(k) {
			env[k] = val
		}
	}
}

// parseEnvironmentFile reads KEY=VALUE lines as systemd does: comments with
// # or ;, optional "export ", shell-like quotes, backslash-newline
// continuation.
func parseEnvironmentFile(data []byte, env map[string]string) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxLineLength)
	var pending string
	for sc.Scan() {
		line := sc.Text()
		if pending != "" {
			line = pending + line
			pending = ""
		}
		if strings.HasSuffix(line, "\\") && !strings.HasSuffix(line, "\\\\") {
			pending = strings.TrimSuffix(line, "\\")
			continue
		}
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' || t[0] == ';' {
			continue
		}
		t = strings.TrimPrefix(t, "export ")
		k, v, ok := strings.Cut(t, "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		if !isVarName(k) {
			continue
		}
		env[k] = envFileValue(strings.TrimSpace(v))
	}
}

func envFileValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(v[i+1:], '\'')
			if j < 0 {
				b.WriteString(v[i+1:])
				return b.String()
			}
			b.WriteString(v[i+1 : i+1+j])
			i += 1 + j
		case c == '"':
			i++
			for ; i < len(v) && v[i] != '"'; i++ {
				if v[i] == '\\' && i+1 < len(v) && strings.IndexByte("\"\\`$\n", v[i+1]) >= 0 {
					i++
				}
				b.WriteByte(v[i])
			}
		case c == '\\' && i+1 < len(v):
			i++
			b.WriteByte(v[i])
		case c == '#' && i > 0 && (v[i-1] == ' ' || v[i-1] == '\t'):
			return strings.TrimRight(b.String(), " \t")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// serviceEnvironment builds the environment of a service's processes:
// the lab's base, Environment= then EnvironmentFile= (files override).
func serviceEnvironment(s *serviceConfig, base map[string]string) (map[string]string, error) {
	env := map[string]string{}
	for k, v := range base {
		env[k] = v
	}
	for _, e := range s.Environment {
		parseEnvironment(e, env)
	}
	for _, f := range s.EnvironmentFile {
		optional := strings.HasPrefix(f, "-")
		f = strings.TrimPrefix(f, "-")
		data, err := readLimited(f)
		if err != nil {
			if optional {
				continue
			}
			return env, fmt.Errorf("EnvironmentFile %s: %w", f, err)
		}
		parseEnvironmentFile(data, env)
	}
	return env, nil
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// labPath is the PATH every service gets.
const labPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// lookPath finds a command that is not an absolute path in the lab's PATH.
func lookPath(name string) string {
	if strings.HasPrefix(name, "/") {
		return name
	}
	for _, d := range strings.Split(labPath, ":") {
		p := d + "/" + name
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0111 != 0 {
			return p
		}
	}
	return name
}
