package decode

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/mailfleet/mailfleet/spec"
)

// The size of the values a topology's expressions may build. A topology
// describes tens to thousands of nodes: nothing in it needs a for
// expression inside another, nor a collection of more than maxElements,
// while both let a file of 159 bytes build a value of billions of elements
// (nested for expressions over range(), setproduct of ranges).
const (
	maxForNesting = 1
	maxElements   = 10000
)

// forNesting finds for expressions (and template for directives) nested
// more than maxForNesting deep in f, with the range of the first.
func forNesting(f *hcl.File) []spec.Diagnostic {
	body, ok := f.Body.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	w := &forWalker{}
	hclsyntax.Walk(body, w)
	return w.diags
}

type forWalker struct {
	depth int
	diags []spec.Diagnostic
}

func (w *forWalker) Enter(n hclsyntax.Node) hcl.Diagnostics {
	if fe, ok := n.(*hclsyntax.ForExpr); ok {
		w.depth++
		if w.depth == maxForNesting+1 {
			r := convertRange(fe.SrcRange)
			w.diags = append(w.diags, spec.Diagnostic{Severity: spec.Error, Summary: "Nested for expression",
				Detail:  fmt.Sprintf("A for expression inside another is not read: nested, they build values of billions of elements from a few bytes, and a topology needs at most %d level.", maxForNesting),
				Subject: &r})
		}
	}
	return nil
}

func (w *forWalker) Exit(n hclsyntax.Node) hcl.Diagnostics {
	if _, ok := n.(*hclsyntax.ForExpr); ok {
		w.depth--
	}
	return nil
}

// bounded wraps a function so that a collection it returns holds at most
// maxElements elements.
func bounded(name string, f function.Function) function.Function {
	spec := &function.Spec{
		Params:   f.Params(),
		VarParam: f.VarParam(),
		Type: func(args []cty.Value) (cty.Type, error) {
			return f.ReturnTypeForValues(args)
		},
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			if err := checkProduct(name, args); err != nil {
				return cty.NilVal, err
			}
			v, err := f.Call(args)
			if err != nil {
				return v, err
			}
			if v.IsKnown() && !v.IsNull() && (v.Type().IsListType() || v.Type().IsSetType() || v.Type().IsTupleType() || v.Type().IsMapType() || v.Type().IsObjectType()) {
				if n := v.LengthInt(); n > maxElements {
					return cty.NilVal, fmt.Errorf("%s would build %d elements; a topology's values hold at most %d", name, n, maxElements)
				}
			}
			return v, nil
		},
	}
	return function.New(spec)
}

// checkProduct refuses, before it runs, a setproduct whose result would
// exceed maxElements (its result is the product of its arguments' sizes).
func checkProduct(name string, args []cty.Value) error {
	if name != "setproduct" {
		return nil
	}
	total := 1
	for _, a := range args {
		if !a.IsKnown() || a.IsNull() || !a.CanIterateElements() {
			continue
		}
		total *= max(a.LengthInt(), 1)
		if total > maxElements {
			return fmt.Errorf("setproduct would build more than %d elements; a topology's values hold at most %d", maxElements, maxElements)
		}
	}
	return nil
}
