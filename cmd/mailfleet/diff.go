package main

import (
	"github.com/pmezard/go-difflib/difflib"
)

// unifiedDiff shows the change from a to b of file name as a unified diff.
func unifiedDiff(name string, a, b []byte) string {
	s, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(string(a)), B: difflib.SplitLines(string(b)),
		FromFile: name, ToFile: name, Context: 3,
	})
	if err != nil {
		return ""
	}
	return s
}
