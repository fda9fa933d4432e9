package store

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mailfleet/mailfleet/runtime/config"
)

func TestAdminDomainsAndAccounts(t *testing.T) {
	cfg := &config.Store{}
	if err := config.Load(writeTestConfig(t, t.TempDir()), cfg); err != nil {
		t.Fatal(err)
	}
	in, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(in.adminHandler())
	defer srv.Close()
	call := func(method, path, body, secret string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if secret != "" {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const secret = "0123456789abcdef0123"
	if code, _ := call("GET", "/v1/domains", "", "wrong-secret-wrong"); code != 401 {
		t.Fatalf("wrong secret: %d", code)
	}
	if code, b := call("PUT", "/v1/domains/other.org", `{"default_quota":{"max_bytes":5000,"max_messages":0},"max_accounts":1}`, secret); code != 200 {
		t.Fatalf("set domain: %d %s", code, b)
	}
	if code, _ := call("PUT", "/v1/domains/other.org", `{"unknown":1}`, secret); code != 400 {
		t.Fatalf("unknown field accepted: %d", code)
	}
	if code, b := call("POST", "/v1/accounts/a@other.org", "", secret); code != 201 || !strings.Contains(b, `"max_bytes":5000`) {
		t.Fatalf("create account: %d %s", code, b)
	}
	if code, b := call("POST", "/v1/accounts/b@other.org", "", secret); code != 409 {
		t.Fatalf("account limit: %d %s", code, b)
	}
	if !in.domainServed("other.org") || !in.domainServed("example.org") || in.domainServed("nope.org") {
		t.Fatal("domainServed does not combine config and admin domains")
	}
	if code, b := call("GET", "/v1/domains", "", secret); code != 200 || !strings.Contains(b, `"accounts":1`) {
		t.Fatalf("list domains: %d %s", code, b)
	}
	if code, _ := call("DELETE", "/v1/domains/other.org", "", secret); code != 409 {
		t.Fatalf("delete domain with accounts: %d", code)
	}
	if code, _ := call("DELETE", "/v1/accounts/a@other.org", "", secret); code != 409 {
		t.Fatalf("delete account that is not moving: %d", code)
	}
	call("PUT", "/v1/accounts/a@other.org/moving", `{"moving":true}`, secret)
	if code, b := call("DELETE", "/v1/accounts/a@other.org", "", secret); code != 204 {
		t.Fatalf("delete account: %d %s", code, b)
	}
	if code, _ := call("GET", "/v1/accounts/a@other.org", "", secret); code != 404 {
		t.Fatalf("deleted account: %d", code)
	}
	if code, _ := call("DELETE", "/v1/domains/other.org", "", secret); code != 204 {
		t.Fatalf("delete domain: %d", code)
	}
	if code, _ := call("GET", "/v1/accounts/..%2F..%2Fetc@x", "", secret); code != 400 && code != 404 {
		t.Fatalf("traversal address: %d", code)
	}
}
