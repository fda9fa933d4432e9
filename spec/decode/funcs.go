package decode

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/go-cty-funcs/cidr"
	"github.com/hashicorp/go-cty-funcs/collection"
	"github.com/hashicorp/go-cty-funcs/encoding"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// markExternal marks a value read by env() or file(): the only places a
// secret may come from. A secret attribute whose value lacks the mark was
// written in the topology in plain text.
const markExternal = "mailfleet:external"

// maxFileSize bounds what file() reads.
const maxFileSize = 1 << 20

// unavailable records env variables and files that could not be read, so the
// decoder can report them at the attribute that used them.
type unavailable struct {
	what []string
	// seen holds every value env() and file() returned, so that no
	// diagnostic can repeat one.
	seen []string
}

// minRedact is the shortest value redacted: shorter ones would blank out
// ordinary words of messages and say little about a secret anyway.
const minRedact = 3

// saw records a value env() or file() returned: the value, each of its
// lines, and each of its words (split at spaces and the separators of
// passwd-like files), so that no part of it can reach a message.
func (u *unavailable) saw(v string) {
	add := func(s string, min int) {
		if len(s) >= min {
			u.seen = append(u.seen, s)
		}
	}
	add(v, minRedact)
	for _, line := range strings.Split(v, "\n") {
		add(strings.TrimSpace(line), minRedact)
		// Words of six bytes or more only: shorter ones are ordinary
		// words of messages too.
		for _, w := range strings.FieldsFunc(line, func(r rune) bool { return unicode.IsSpace(r) || strings.ContainsRune(":,;=\"'", r) }) {
			add(w, 6)
		}
	}
	// Longest first, so that a part never spoils the whole's replacement.
	sort.Slice(u.seen, func(i, j int) bool { return len(u.seen[i]) > len(u.seen[j]) })
}

// redact replaces every value seen in s, in any letter case.
func (u *unavailable) redact(s string) string {
	for _, v := range u.seen {
		s = replaceFold(s, v, "(sensitive value)")
	}
	return s
}

// replaceFold is strings.ReplaceAll matching old in any letter case.
func replaceFold(s, old, repl string) string {
	lo, lold := strings.ToLower(s), strings.ToLower(old)
	if len(lo) != len(s) || len(lold) != len(old) || !strings.Contains(lo, lold) {
		if strings.Contains(s, old) {
			return strings.ReplaceAll(s, old, repl)
		}
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(lo, lold)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString(repl)
		s, lo = s[i+len(old):], lo[i+len(old):]
	}
}

func (u *unavailable) add(s string) { u.what = append(u.what, s) }

func (u *unavailable) take() []string {
	w := u.what
	u.what = nil
	return w
}

func functions(dir string, allow []string, env func(string) (string, bool), un *unavailable) map[string]function.Function {
	fs := map[string]function.Function{
		"abs":          stdlib.AbsoluteFunc,
		"ceil":         stdlib.CeilFunc,
		"chomp":        stdlib.ChompFunc,
		"coalesce":     collection.CoalesceFunc,
		"coalescelist": stdlib.CoalesceListFunc,
		"compact":      stdlib.CompactFunc,
		"concat":       stdlib.ConcatFunc,
		"contains":     stdlib.ContainsFunc,
		"distinct":     stdlib.DistinctFunc,
		"element":      stdlib.ElementFunc,
		"flatten":      stdlib.FlattenFunc,
		"floor":        stdlib.FloorFunc,
		"format":       stdlib.FormatFunc,
		"formatlist":   stdlib.FormatListFunc,
		"indent":       stdlib.IndentFunc,
		"join":         stdlib.JoinFunc,
		"jsonencode":   stdlib.JSONEncodeFunc,
		"keys":         stdlib.KeysFunc,
		"length":       stdlib.LengthFunc,
		"lookup":       stdlib.LookupFunc,
		"lower":        stdlib.LowerFunc,
		"max":          stdlib.MaxFunc,
		"merge":        stdlib.MergeFunc,
		"min":          stdlib.MinFunc,
		"range":        stdlib.RangeFunc,
		"regex":        stdlib.RegexFunc,
		"replace":      stdlib.ReplaceFunc,
		"reverse":      stdlib.ReverseListFunc,
		"setproduct":   stdlib.SetProductFunc,
		"slice":        stdlib.SliceFunc,
		"sort":         stdlib.SortFunc,
		"split":        stdlib.SplitFunc,
		"strrev":       stdlib.ReverseFunc,
		"substr":       stdlib.SubstrFunc,
		"title":        stdlib.TitleFunc,
		"tolist":       stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
		"tomap":        stdlib.MakeToFunc(cty.Map(cty.DynamicPseudoType)),
		"tonumber":     stdlib.MakeToFunc(cty.Number),
		"toset":        stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
		"tostring":     stdlib.MakeToFunc(cty.String),
		"trim":         stdlib.TrimFunc,
		"trimprefix":   stdlib.TrimPrefixFunc,
		"trimspace":    stdlib.TrimSpaceFunc,
		"trimsuffix":   stdlib.TrimSuffixFunc,
		"upper":        stdlib.UpperFunc,
		"values":       stdlib.ValuesFunc,
		"zipmap":       stdlib.ZipmapFunc,
		"cidrhost":     cidr.HostFunc,
		"cidrnetmask":  cidr.NetmaskFunc,
		"cidrsubnet":   cidr.SubnetFunc,
		"cidrsubnets":  cidr.SubnetsFunc,
		"base64encode": encoding.Base64EncodeFunc,
		"base64decode": encoding.Base64DecodeFunc,
		"urlencode":    encoding.URLEncodeFunc,
		"env":          envFunc(env, un),
		"file":         fileFunc(dir, allow, un),
	}
	// Those that build collections are bounded (bounds.go).
	for _, name := range []string{"concat", "distinct", "flatten", "formatlist", "keys", "merge", "range", "setproduct", "split", "tolist", "tomap", "toset", "values", "zipmap"} {
		fs[name] = bounded(name, fs[name])
	}
	return fs
}

// envFunc reads an environment variable. An unset variable gives an unknown
// value (and a note for the decoder): validate can run without secrets.
func envFunc(env func(string) (string, bool), un *unavailable) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "name", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			name := args[0].AsString()
			v, ok := env(name)
			if !ok {
				un.add("environment variable " + name + " is not set")
				return cty.UnknownVal(cty.String).Mark(markExternal), nil
			}
			un.saw(v)
			return cty.StringVal(v).Mark(markExternal), nil
		},
	})
}

// fileFunc reads a file relative to the topology's directory. A missing
// file gives an unknown value and a note, like env(). The file must lie
// below dir or one of allow, symbolic links resolved.
func fileFunc(dir string, allow []string, un *unavailable) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			p := args[0].AsString()
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			if err := inside(p, append([]string{dir}, allow...)); err != nil {
				return cty.NilVal, fmt.Errorf("file %q %w; %s", args[0].AsString(), err, confinedMark)
			}
			st, err := os.Stat(p)
			if err != nil {
				un.add("file " + args[0].AsString() + " cannot be read: " + errText(err))
				return cty.UnknownVal(cty.String).Mark(markExternal), nil
			}
			if st.Size() > maxFileSize {
				return cty.NilVal, fmt.Errorf("file %s is larger than %d bytes", args[0].AsString(), maxFileSize)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				un.add("file " + args[0].AsString() + " cannot be read: " + errText(err))
				return cty.UnknownVal(cty.String).Mark(markExternal), nil
			}
			if !utf8.Valid(b) {
				return cty.NilVal, fmt.Errorf("file %s is not valid UTF-8", args[0].AsString())
			}
			v := strings.TrimRight(string(b), "\r\n")
			un.saw(v)
			return cty.StringVal(v).Mark(markExternal), nil
		},
	})
}

func errText(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

// confinedMark ends file()'s refusal of a path outside the topology.
const confinedMark = "the topology may read files below its own directory only (mailfleet -allow-path DIR allows more)"

// inside fails unless p, with its symbolic links resolved (as far as it
// exists), lies below one of dirs (resolved likewise).
func inside(p string, dirs []string) error {
	real := resolve(p)
	for _, d := range dirs {
		rd := resolve(d)
		if rel, err := filepath.Rel(rd, real); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel) {
			return nil
		}
	}
	return errors.New("is outside the topology's directory")
}

// resolve is p absolute and clean with its symbolic links resolved; a
// part that does not exist yet is kept as written.
func resolve(p string) string {
	p, _ = filepath.Abs(p)
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	dir, base := filepath.Split(p)
	if dir == p || dir == "" {
		return p
	}
	return filepath.Join(resolve(filepath.Clean(dir)), base)
}
