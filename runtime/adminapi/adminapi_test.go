package adminapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// TestClientErrors: how the client reports the store's answers. The
// store itself is exercised through this client by provision's tests.
func TestClientErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Authorization") != "Bearer right-secret-0123456789":
			w.WriteHeader(http.StatusUnauthorized)
		case strings.HasPrefix(r.URL.Path, "/v1/accounts/nobody"):
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":"no such account"}`))
		case r.URL.Path == "/v1/status":
			w.Write([]byte(`{"instance":"A","accounts":7}`))
		default:
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"bad address"}`))
		}
	}))
	defer srv.Close()
	addr := netip.MustParseAddrPort(strings.TrimPrefix(srv.URL, "http://"))
	ctx := context.Background()
	c, err := NewClient("A", "a.example", addr, "right-secret-0123456789", false, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.Count(ctx); err != nil || n != 7 {
		t.Errorf("Count = %d, %v; want 7", n, err)
	}
	if _, err := c.Account(ctx, "nobody@example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Account of a missing account: %v, want ErrNotFound", err)
	}
	if err := c.DeleteAccount(ctx, "nobody@example.com"); err != nil {
		t.Errorf("DeleteAccount of a missing account: %v, want nil", err)
	}
	if _, err := c.CreateAccount(ctx, "bad"); err == nil || !strings.Contains(err.Error(), "bad address") {
		t.Errorf("CreateAccount refused: %v, want the store's reason", err)
	}
	wrong, _ := NewClient("A", "a.example", addr, "wrong-secret-0123456789", false, "", nil)
	if _, err := wrong.Count(ctx); err == nil || strings.Contains(err.Error(), "wrong-secret") || !strings.Contains(err.Error(), "refused") {
		t.Errorf("a wrong secret: %v, want a refusal that does not print the secret", err)
	}
}
