package graph

import (
	"os"
	"testing"

	"github.com/mailfleet/mailfleet/spec/spectest"
)

func TestScratchWrite(t *testing.T) {
	dir := os.Getenv("GRAPH_SCRATCH")
	if dir == "" {
		t.Skip()
	}
	r := spectest.Reference()
	os.WriteFile(dir+"/ref.dot", DOT(r), 0o644)
	os.WriteFile(dir+"/ref.svg", SVG(r), 0o644)
}

func TestScratchWriteLarge(t *testing.T) {
	dir := os.Getenv("GRAPH_SCRATCH")
	if dir == "" {
		t.Skip()
	}
	os.WriteFile(dir+"/large.dot", DOT(large()), 0o644)
	os.WriteFile(dir+"/large.svg", SVG(large()), 0o644)
}
