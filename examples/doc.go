// Package examples holds example topologies and the test that keeps them
// honest: valid examples validate with no diagnostic, and every diagnostic
// of an invalid one is announced by a "# ERROR: <summary>" or
// "# WARNING: <summary>" comment on its line.
package examples
