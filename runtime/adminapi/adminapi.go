// Package adminapi is a store instance's admin API (ADMIN-API.md): its
// wire types, which the store serves, and the client that provision (and
// `mailfleet account`) speaks it with. It imports nothing of mailfleet.
package adminapi

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

// Quota bounds an account (0 means unlimited).
type Quota struct {
	MaxBytes    int64 `json:"max_bytes"`
	MaxMessages int64 `json:"max_messages"`
}

// Usage is what an account holds.
type Usage struct {
	Bytes    int64 `json:"bytes"`
	Messages int64 `json:"messages"`
}

// Account is an account as the admin API shows it.
type Account struct {
	Address string `json:"address"`
	Usage   Usage  `json:"usage"`
	Quota   Quota  `json:"quota"`
	// Moving: deliveries get 451 while the account moves between instances.
	Moving bool `json:"moving"`
}

// DomainSettings are the store's per-domain settings.
type DomainSettings struct {
	// DefaultQuota is given to accounts created in the domain.
	DefaultQuota Quota `json:"default_quota"`
	// MaxAccounts bounds the accounts created through the admin API (0: no
	// limit).
	MaxAccounts int `json:"max_accounts"`
}

// Domain is one entry of GET /v1/domains.
type Domain struct {
	Domain string `json:"domain"`
	DomainSettings
	Accounts int `json:"accounts"`
}

// Status is the body of GET /v1/status.
type Status struct {
	Instance  string            `json:"instance"`
	Hostname  string            `json:"hostname"`
	Listeners map[string]string `json:"listeners"`
	Uptime    string            `json:"uptime"`
	Accounts  int               `json:"accounts"`
	Queued    int               `json:"queued"`
}

// Error is the body of every answer that is not a success.
type Error struct {
	Error string `json:"error"`
}

// ErrNotFound is a 404 of the admin API.
var ErrNotFound = errors.New("not found")

// Client talks to one instance's admin API.
type Client struct {
	Name   string // the instance
	FQDN   string
	base   string // https://host:port or http://host:port
	secret string
	hc     *http.Client
}

// Dialer opens the client's connections (through a jump host, say).
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// NewClient reaches instance name's admin listener addr (VIP:port); over
// TLS, verified against caFile (or the system roots) for fqdn, when
// useTLS; its connections are opened by dial (nil: directly).
func NewClient(name, fqdn string, addr netip.AddrPort, secret string, useTLS bool, caFile string, dial Dialer) (*Client, error) {
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
	return &Client{Name: name, FQDN: fqdn, base: scheme + "://" + addr.String(), secret: secret,
		hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}}, nil
}

func (a *Client) do(ctx context.Context, method, path string, body io.Reader, out any, ok ...int) error {
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
	var e Error
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
func (a *Client) Count(ctx context.Context) (int, error) {
	var st Status
	err := a.do(ctx, "GET", "/v1/status", nil, &st, 200)
	return st.Accounts, err
}

// Accounts lists every account with its usage and quota.
func (a *Client) Accounts(ctx context.Context) ([]Account, error) {
	var out []Account
	err := a.do(ctx, "GET", "/v1/accounts", nil, &out, 200)
	return out, err
}

// Account is one account; the error wraps ErrNotFound when it has none.
func (a *Client) Account(ctx context.Context, addr string) (Account, error) {
	var out Account
	err := a.do(ctx, "GET", "/v1/accounts/"+url.PathEscape(addr), nil, &out, 200)
	return out, err
}

// CreateAccount creates the account's storage (idempotent in the store).
func (a *Client) CreateAccount(ctx context.Context, addr string) (Account, error) {
	var out Account
	err := a.do(ctx, "POST", "/v1/accounts/"+url.PathEscape(addr), nil, &out, 201, 200)
	return out, err
}

// SetQuota replaces the account's quota.
func (a *Client) SetQuota(ctx context.Context, addr string, q Quota) (Account, error) {
	var out Account
	err := a.do(ctx, "PUT", "/v1/accounts/"+url.PathEscape(addr)+"/quota", jsonBody(q), &out, 200)
	return out, err
}

// SetMoving marks the account moving (deliveries get 451) or not.
func (a *Client) SetMoving(ctx context.Context, addr string, moving bool) error {
	return a.do(ctx, "PUT", "/v1/accounts/"+url.PathEscape(addr)+"/moving", jsonBody(map[string]bool{"moving": moving}), nil, 200)
}

// DeleteAccount marks the account moving and removes its storage; a
// missing mailbox is not an error.
func (a *Client) DeleteAccount(ctx context.Context, addr string) error {
	if _, err := a.Account(ctx, addr); errors.Is(err, ErrNotFound) {
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
func (a *Client) Export(ctx context.Context, addr string, w io.Writer) error {
	return a.do(ctx, "GET", "/v1/accounts/"+url.PathEscape(addr)+"/export", nil, w, 200)
}

// Import unpacks an exported tar into an account that holds no mail.
func (a *Client) Import(ctx context.Context, addr string, tar io.Reader) (Account, error) {
	var out Account
	err := a.do(ctx, "PUT", "/v1/accounts/"+url.PathEscape(addr)+"/import", tar, &out, 200)
	return out, err
}

// Domains lists the instance's domains and their settings.
func (a *Client) Domains(ctx context.Context) (map[string]DomainSettings, error) {
	var out []Domain
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
func (a *Client) SetDomain(ctx context.Context, domain string, st DomainSettings) error {
	return a.do(ctx, "PUT", "/v1/domains/"+url.PathEscape(domain), jsonBody(st), nil, 200)
}
