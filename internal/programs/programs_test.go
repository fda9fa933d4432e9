package programs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// essential are programs of Debian's essential and required packages
// (coreutils, util-linux, mount, procps, …), present on every Debian
// system, debootstrap's minbase included, and the Go toolchain.
var essential = []string{"go", "sh", "/bin/sh", "bash", "cat", "cp", "true", "false", "sleep", "kill",
	"mount", "umount", "id", "env", "stat", "ls", "getent", "chown", "chmod", "mkdir", "rm", "ps", "tail", "sync", "nice"}

// TestDepsScriptInstallsEveryPackage: every package of the table is in
// scripts/deps.sh, so a fresh machine gets every program.
func TestDepsScriptInstallsEveryPackage(t *testing.T) {
	b, err := os.ReadFile("../../scripts/deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)\nPKGS=\((.*?)\n\)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("scripts/deps.sh has no PKGS=( … ) list")
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(string(m[1]), "\n") {
		line, _, _ = strings.Cut(line, "#")
		for _, f := range strings.Fields(line) {
			listed[f] = true
		}
	}
	for prog, pkg := range Packages {
		// dash, dpkg and util-linux are essential: every Debian system has them.
		if !listed[pkg] && pkg != "dpkg" && pkg != "util-linux" && pkg != "dash" {
			t.Errorf("%s needs the Debian package %s, which scripts/deps.sh does not install", prog, pkg)
		}
	}
}

// TestEveryProgramIsInstalled: on a machine where scripts/deps.sh ran,
// every program of the table is there. A missing one fails here, naming
// its package, before any test that runs it.
func TestEveryProgramIsInstalled(t *testing.T) {
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range Packages {
			if !yield(k) {
				return
			}
		}
	}) {
		if _, err := Find(name); err != nil {
			t.Error(err)
		}
	}
}

// TestEveryExecutedProgramIsListed reads every Go file of the repository
// and checks that each program named by a string literal in exec.Command,
// exec.CommandContext, exec.LookPath, Find, Require, or the lab's run and
// output helpers is in the table (or is an essential program).
func TestEveryExecutedProgramIsListed(t *testing.T) {
	root := "../.."
	fset := token.NewFileSet()
	seen := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			// bench/ scripts install the peers and profilers they run.
			if name := d.Name(); name == ".git" || name == "testdata" || name == "bench" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			arg := -1
			switch fn := call.Fun.(type) {
			case *ast.SelectorExpr:
				switch fn.Sel.Name {
				case "Command", "LookPath", "Find":
					arg = 0
				case "CommandContext":
					arg = 1
				case "Require":
					arg = 1
				}
				if x, ok := fn.X.(*ast.Ident); !ok || (x.Name != "exec" && x.Name != "programs") {
					arg = -1
				}
			case *ast.Ident:
				if (fn.Name == "run" || fn.Name == "output") && filepath.Base(filepath.Dir(path)) == "lab" {
					arg = 0
				}
			}
			if arg < 0 || arg >= len(call.Args) {
				return true
			}
			lit, ok := call.Args[arg].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			name, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			seen++
			if Package(name) == "" && !slices.Contains(essential, name) && !slices.Contains(essential, filepath.Base(name)) {
				t.Errorf("%s: runs %q, which is neither in the table of programs nor essential: add it with its Debian package", fset.Position(lit.Pos()), name)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < 20 {
		t.Fatalf("found only %d programs run by the code: the scan is broken", seen)
	}
}

// TestFindNamesThePackage: a missing program's error names its package.
func TestFindNamesThePackage(t *testing.T) {
	Packages["mailfleet-no-such-program"] = "mailfleet-no-such-package"
	defer delete(Packages, "mailfleet-no-such-program")
	_, err := Find("mailfleet-no-such-program")
	if err == nil || !strings.Contains(err.Error(), "install the Debian package mailfleet-no-such-package") {
		t.Fatalf("Find: %v", err)
	}
	if _, err := Find("mailfleet-not-in-table"); err == nil || !strings.Contains(err.Error(), "not in the table") {
		t.Fatalf("Find of an unknown program: %v", err)
	}
}
