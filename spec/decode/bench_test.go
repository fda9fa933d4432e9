package decode_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/mailfleet/mailfleet/spec"
	"github.com/mailfleet/mailfleet/spec/decode"
	"github.com/mailfleet/mailfleet/spec/spectest"
)

// BenchmarkDecodeValidate isolates decode and validate from render in the
// compile benchmark (render/compile_test.go), to see where time goes.
func BenchmarkDecodeValidate(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(spectest.Generate(n)), 0o644); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t, _, ds := decode.Load(dir, decode.Options{Env: spectest.GenerateEnv})
				ds = append(ds, spec.Validate(t)...)
				if ds.HasErrors() {
					b.Fatal(ds)
				}
			}
		})
	}
}
