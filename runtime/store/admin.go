package store

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/mailfleet/mailfleet/runtime/adminapi"
	"github.com/mailfleet/mailfleet/runtime/store/maildir"
	"github.com/mailfleet/mailfleet/runtime/store/queue"
)

// adminHandler serves the admin API (runtime/adminapi/ADMIN-API.md; its wire types are package adminapi). Everything under
// /v1/ needs "Authorization: Bearer <admin secret>"; /healthz does not.
func (in *Instance) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /metrics", in.handleMetrics)
	v1 := http.NewServeMux()
	v1.HandleFunc("GET /v1/status", in.handleStatus)
	v1.HandleFunc("GET /v1/accounts", in.handleListAccounts)
	v1.HandleFunc("GET /v1/accounts/{address}", in.handleGetAccount)
	v1.HandleFunc("POST /v1/accounts/{address}", in.handleCreateAccount)
	v1.HandleFunc("PUT /v1/accounts/{address}/quota", in.handleSetQuota)
	v1.HandleFunc("PUT /v1/accounts/{address}/moving", in.handleMoving)
	v1.HandleFunc("DELETE /v1/accounts/{address}", in.handleDeleteAccount)
	v1.HandleFunc("GET /v1/domains", in.handleListDomains)
	v1.HandleFunc("GET /v1/queue", in.handleQueue)
	v1.HandleFunc("PUT /v1/domains/{domain}", in.handleSetDomain)
	v1.HandleFunc("DELETE /v1/domains/{domain}", in.handleDeleteDomain)
	v1.HandleFunc("GET /v1/accounts/{address}/export", in.handleExport)
	v1.HandleFunc("PUT /v1/accounts/{address}/import", in.handleImport)
	mux.Handle("/v1/", in.requireSecret(v1))
	return mux
}

func (in *Instance) requireSecret(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(in.secret)) != 1 {
			in.metrics.refused("admin", "bad_secret")
			time.Sleep(200 * time.Millisecond)
			writeJSON(w, http.StatusUnauthorized, adminapi.Error{Error: "admin secret required"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (in *Instance) handleStatus(w http.ResponseWriter, r *http.Request) {
	accts, err := in.store.Accounts()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, adminapi.Error{Error: err.Error()})
		return
	}
	queued, err := in.queue.Entries()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, adminapi.Error{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, adminapi.Status{Instance: in.cfg.Instance, Hostname: in.cfg.Hostname, Listeners: in.Addrs(),
		Uptime: time.Since(in.started).Round(time.Second).String(), Accounts: len(accts), Queued: len(queued)})
}

func (in *Instance) account(addr string) (adminapi.Account, error) {
	a, err := in.store.Account(addr)
	if err != nil {
		return adminapi.Account{}, err
	}
	u, err := a.Usage()
	if err != nil {
		return adminapi.Account{}, err
	}
	in.mu.Lock()
	moving := in.moving[a.Address]
	in.mu.Unlock()
	return adminapi.Account{Address: a.Address, Usage: adminapi.Usage(u), Quota: adminapi.Quota(a.Quota()), Moving: moving}, nil
}

func adminError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	if errors.Is(err, maildir.ErrBadAddress) {
		code = http.StatusBadRequest
	}
	writeJSON(w, code, adminapi.Error{Error: err.Error()})
}

func (in *Instance) handleListAccounts(w http.ResponseWriter, r *http.Request) {
	addrs, err := in.store.Accounts()
	if err != nil {
		adminError(w, err)
		return
	}
	out := []adminapi.Account{}
	for _, a := range addrs {
		j, err := in.account(a)
		if err != nil {
			adminError(w, err)
			return
		}
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, out)
}

func (in *Instance) handleGetAccount(w http.ResponseWriter, r *http.Request) {
	addr := r.PathValue("address")
	if !in.store.HasAccount(addr) {
		writeJSON(w, http.StatusNotFound, adminapi.Error{Error: "no such account"})
		return
	}
	j, err := in.account(addr)
	if err != nil {
		adminError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

func (in *Instance) handleCreateAccount(w http.ResponseWriter, r *http.Request) {
	addr := r.PathValue("address")
	_, domain, err := maildir.SplitAddress(addr)
	if err != nil {
		adminError(w, err)
		return
	}
	if ds, err := in.store.Domain(domain); err == nil && ds.MaxAccounts > 0 && !in.store.HasAccount(addr) {
		accts, err := in.store.Accounts()
		if err != nil {
			adminError(w, err)
			return
		}
		n := 0
		for _, a := range accts {
			if strings.HasSuffix(a, "@"+domain) {
				n++
			}
		}
		if n >= ds.MaxAccounts {
			writeJSON(w, http.StatusConflict, adminapi.Error{Error: "the domain's account limit is reached"})
			return
		}
	}
	j, err := in.account(addr)
	if err != nil {
		adminError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, j)
}

func (in *Instance) handleSetQuota(w http.ResponseWriter, r *http.Request) {
	var q maildir.Quota
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&q); err != nil {
		writeJSON(w, http.StatusBadRequest, adminapi.Error{Error: err.Error()})
		return
	}
	a, err := in.store.Account(r.PathValue("address"))
	if err != nil {
		adminError(w, err)
		return
	}
	if err := a.SetQuota(q); err != nil {
		writeJSON(w, http.StatusBadRequest, adminapi.Error{Error: err.Error()})
		return
	}
	j, _ := in.account(a.Address)
	writeJSON(w, http.StatusOK, j)
}

// movingWait bounds how long marking an account moving waits for the
// deliveries being written to it.
const movingWait = 30 * time.Second

func (in *Instance) handleMoving(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Moving bool `json:"moving"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, adminapi.Error{Error: err.Error()})
		return
	}
	local, domain, err := maildir.SplitAddress(r.PathValue("address"))
	if err != nil {
		adminError(w, err)
		return
	}
	addr := local + "@" + domain
	if body.Moving {
		// The deliveries under way finish first (a disk write each).
		ctx, cancel := context.WithTimeout(r.Context(), movingWait)
		err := in.markMoving(ctx, addr)
		cancel()
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{
				"error": "marked moving, but deliveries to the account are still being written; repeat the request"})
			return
		}
	} else {
		in.mu.Lock()
		delete(in.moving, addr)
		in.mu.Unlock()
	}
	j, err := in.account(addr)
	if err != nil {
		adminError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// handleExport streams the account as a tar archive. The account must be
// marked moving first, so that nothing changes it during the copy.
func (in *Instance) handleExport(w http.ResponseWriter, r *http.Request) {
	local, domain, err := maildir.SplitAddress(r.PathValue("address"))
	if err != nil {
		adminError(w, err)
		return
	}
	addr := local + "@" + domain
	in.mu.Lock()
	moving := in.moving[addr]
	in.mu.Unlock()
	if !moving {
		writeJSON(w, http.StatusConflict, adminapi.Error{Error: "mark the account moving before exporting it"})
		return
	}
	if !in.store.HasAccount(addr) {
		writeJSON(w, http.StatusNotFound, adminapi.Error{Error: "no such account"})
		return
	}
	w.Header().Set("Content-Type", "application/x-tar")
	if err := in.store.ExportAccount(addr, w); err != nil {
		// Headers are gone; a truncated tar fails to import, which is the
		// signal the mover needs.
		in.log.Error("export failed", "account", addr, "err", err)
	}
}

// handleImport unpacks an exported account; the account must hold no mail.
func (in *Instance) handleImport(w http.ResponseWriter, r *http.Request) {
	err := in.store.ImportAccount(r.PathValue("address"), r.Body)
	switch {
	case errors.Is(err, maildir.ErrAccountExists):
		writeJSON(w, http.StatusConflict, adminapi.Error{Error: err.Error()})
	case err != nil:
		writeJSON(w, http.StatusBadRequest, adminapi.Error{Error: err.Error()})
	default:
		j, err := in.account(r.PathValue("address"))
		if err != nil {
			adminError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, j)
	}
}

// handleDeleteAccount removes an account's storage; it must be marked
// moving first so that no session or delivery uses it.
func (in *Instance) handleDeleteAccount(w http.ResponseWriter, r *http.Request) {
	local, domain, err := maildir.SplitAddress(r.PathValue("address"))
	if err != nil {
		adminError(w, err)
		return
	}
	addr := local + "@" + domain
	in.mu.Lock()
	moving := in.moving[addr]
	in.mu.Unlock()
	if !moving {
		writeJSON(w, http.StatusConflict, adminapi.Error{Error: "mark the account moving before deleting it"})
		return
	}
	if err := in.store.DeleteAccount(addr); errors.Is(err, maildir.ErrNoAccount) {
		writeJSON(w, http.StatusNotFound, adminapi.Error{Error: err.Error()})
		return
	} else if err != nil {
		adminError(w, err)
		return
	}
	in.mu.Lock()
	delete(in.moving, addr)
	in.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (in *Instance) handleListDomains(w http.ResponseWriter, r *http.Request) {
	ds, err := in.store.Domains()
	if err != nil {
		adminError(w, err)
		return
	}
	accts, err := in.store.Accounts()
	if err != nil {
		adminError(w, err)
		return
	}
	out := []adminapi.Domain{}
	for _, d := range ds {
		st, err := in.store.Domain(d)
		if err != nil {
			adminError(w, err)
			return
		}
		j := adminapi.Domain{Domain: d, DomainSettings: wireDomain(st)}
		for _, a := range accts {
			if strings.HasSuffix(a, "@"+d) {
				j.Accounts++
			}
		}
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, out)
}

func (in *Instance) handleSetDomain(w http.ResponseWriter, r *http.Request) {
	var st maildir.DomainSettings
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		writeJSON(w, http.StatusBadRequest, adminapi.Error{Error: err.Error()})
		return
	}
	if err := in.store.SetDomain(r.PathValue("domain"), st); err != nil {
		writeJSON(w, http.StatusBadRequest, adminapi.Error{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, adminapi.Domain{Domain: strings.ToLower(r.PathValue("domain")), DomainSettings: wireDomain(st)})
}

func (in *Instance) handleDeleteDomain(w http.ResponseWriter, r *http.Request) {
	err := in.store.DeleteDomain(r.PathValue("domain"))
	switch {
	case errors.Is(err, maildir.ErrNoDomain):
		writeJSON(w, http.StatusNotFound, adminapi.Error{Error: err.Error()})
	case errors.Is(err, maildir.ErrDomainNotEmpty):
		writeJSON(w, http.StatusConflict, adminapi.Error{Error: err.Error()})
	case err != nil:
		adminError(w, err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func (in *Instance) handleQueue(w http.ResponseWriter, r *http.Request) {
	envs, err := in.queue.Entries()
	if err != nil {
		adminError(w, err)
		return
	}
	if envs == nil {
		envs = []queue.Envelope{}
	}
	writeJSON(w, http.StatusOK, envs)
}

// wireDomain is a domain's settings as the admin API shows them.
func wireDomain(st maildir.DomainSettings) adminapi.DomainSettings {
	return adminapi.DomainSettings{DefaultQuota: adminapi.Quota(st.DefaultQuota), MaxAccounts: st.MaxAccounts}
}
