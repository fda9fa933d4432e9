package provision

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"time"
)

// Quota and Usage are the store's (0 means unlimited).
type Quota struct {
	MaxBytes    int64 `json:"max_bytes"`
	MaxMessages int64 `json:"max_messages"`
}

type Usage struct {
	Bytes    int64 `json:"bytes"`
	Messages int64 `json:"messages"`
}

// Mailbox is an account as an instance's admin API shows it.
type Mailbox struct {
	Address string `json:"address"`
	Usage   Usage  `json:"usage"`
	Quota   Quota  `json:"quota"`
	Moving  bool   `json:"moving"`
}

// DomainSettings are the store's per-domain settings.
type DomainSettings struct {
	DefaultQuota Quota `json:"default_quota"`
	MaxAccounts  int   `json:"max_accounts"`
}

type domainJSON struct {
	Domain string `json:"domain"`
	DomainSettings
	Accounts int `json:"accounts"`
}

// ErrNotFound is a 404 of the admin API.
var ErrNotFound = errors.New("not found")

// AdminClient talks to one instance's admin API.
type AdminClient struct {
	Name   string // the instance
	FQDN   string
	base   string // https://host:port or http://host:port
	secret string
	hc     *http.Client
}

// NewAdminClient reaches the admin listener addr (VIP:port); TLS, verified
// against caFile (or the system roots) for serverName, when useTLS.
func NewAdminClient(name, fqdn string, addr netip.AddrPort, secret string, useTLS bool, caFile string) (*AdminClient, error) {
	return newAdminClient(name, fqdn, addr, secret, useTLS, caFile, nil)
}

// newAdminClient is NewAdminClient with the connections opened by dial
// (nil: directly).
func newAdminClient(name, fqdn string, addr netip.AddrPort, secret string, useTLS bool, caFile string, dial Dialer) (*AdminClient, error) {
	if dial == nil {
		dial = (&net.Dialer{Timeout: 5 * time.Second}).DialContext
	}
	tr := &http.Transport{
		DialContext:         dial,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
	scheme := "http"
	if useTLS {
		scheme = "https"
		cfg := &tls.Config{ServerName: fqdn, MinVersion: tls.VersionTLS12}
		if caFile != "" {
			pem, err := os.ReadFile(caFile)
			if err != nil {
				return nil, fmt.Errorf("instance %s: admin CA: %w", name, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("instance %s: admin CA %s holds no certificate", name, caFile)
			}
			cfg.RootCAs = pool
		}
		tr.TLSClientConfig = cfg
	}
	return &AdminClient{Name: name, FQDN: fqdn, base: scheme + "://" + addr.String(), secret: secret,
		hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}}, nil
}

func (a *AdminClient) do(ctx context.Context, method, path string, body io.Reader, out any, ok ...int) error {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.secret)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("instance %s: admin API %s: %w", a.Name, a.base, err)
	}
	defer resp.Body.Close()
	for _, c := range ok {
		if resp.StatusCode == c {
			if out == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				return nil
			}
			if w, isW := out.(io.Writer); isW {
				_, err := io.Copy(w, resp.Body)
				return err
			}
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				return fmt.Errorf("instance %s: %s %s: %w", a.Name, method, path, err)
			}
			return nil
		}
	}
	var e struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&e)
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("instance %s: %s %s: %w", a.Name, method, path, ErrNotFound)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return fmt.Errorf("instance %s: the admin API refused the topology's admin secret", a.Name)
	}
	return fmt.Errorf("instance %s: %s %s: %s: %s", a.Name, method, path, resp.Status, e.Error)
}

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

// Count is the number of accounts the instance holds.
func (a *AdminClient) Count(ctx context.Context) (int, error) {
	var st struct {
		Accounts int `json:"accounts"`
	}
	err := a.do(ctx, "GET", "/v1/status", nil, &st, 200)
	return st.Accounts, err
}

// Mailboxes lists every account with its usage and quota.
func (a *AdminClient) Mailboxes(ctx context.Context) ([]Mailbox, error) {
	var out []Mailbox
	err := a.do(ctx, "GET", "/v1/accounts", nil, &out, 200)
	return out, err
}

// Mailbox is one account; the error wraps ErrNotFound when it has none.
func (a *AdminClient) Mailbox(ctx context.Context, addr string) (Mailbox, error) {
	var out Mailbox
	err := a.do(ctx, "GET", "/v1/accounts/"+url.PathEscape(addr), nil, &out, 200)
	return out, err
}

// CreateMailbox creates the account's storage (idempotent in the store).
func (a *AdminClient) CreateMailbox(ctx context.Context, addr string) (Mailbox, error) {
	var out Mailbox
	err := a.do(ctx, "POST", "/v1/accounts/"+url.PathEscape(addr), nil, &out, 201, 200)
	return out, err
}

// SetQuota replaces the account's quota.
func (a *AdminClient) SetQuota(ctx context.Context, addr string, q Quota) (Mailbox, error) {
	var out Mailbox
	err := a.do(ctx, "PUT", "/v1/accounts/"+url.PathEscape(addr)+"/quota", jsonBody(q), &out, 200)
	return out, err
}

// SetMoving marks the account moving (deliveries get 451) or not.
func (a *AdminClient) SetMoving(ctx context.Context, addr string, moving bool) error {
	return a.do(ctx, "PUT", "/v1/accounts/"+url.PathEscape(addr)+"/moving", jsonBody(map[string]bool{"moving": moving}), nil, 200)
}

// DeleteMailbox marks the account moving and removes its storage; a
// missing mailbox is not an error.
func (a *AdminClient) DeleteMailbox(ctx context.Context, addr string) error {
	if _, err := a.Mailbox(ctx, addr); errors.Is(err, ErrNotFound) {
		return nil // marking it moving would create it
	} else if err != nil {
		return err
	}
	if err := a.SetMoving(ctx, addr, true); err != nil {
		return err
	}
	err := a.do(ctx, "DELETE", "/v1/accounts/"+url.PathEscape(addr), nil, nil, 204)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// Export writes the account's tar (it must be moving) to w.
func (a *AdminClient) Export(ctx context.Context, addr string, w io.Writer) error {
	return a.do(ctx, "GET", "/v1/accounts/"+url.PathEscape(addr)+"/export", nil, w, 200)
}

// Import unpacks an exported tar into an account that holds no mail.
func (a *AdminClient) Import(ctx context.Context, addr string, tar io.Reader) (Mailbox, error) {
	var out Mailbox
	err := a.do(ctx, "PUT", "/v1/accounts/"+url.PathEscape(addr)+"/import", tar, &out, 200)
	return out, err
}

// Domains lists the instance's domains and their settings.
func (a *AdminClient) Domains(ctx context.Context) (map[string]DomainSettings, error) {
	var out []domainJSON
	if err := a.do(ctx, "GET", "/v1/domains", nil, &out, 200); err != nil {
		return nil, err
	}
	m := make(map[string]DomainSettings, len(out))
	for _, d := range out {
		m[d.Domain] = d.DomainSettings
	}
	return m, nil
}

// SetDomain creates or updates a domain.
func (a *AdminClient) SetDomain(ctx context.Context, domain string, st DomainSettings) error {
	return a.do(ctx, "PUT", "/v1/domains/"+url.PathEscape(domain), jsonBody(st), nil, 200)
}
