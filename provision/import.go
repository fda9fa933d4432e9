package provision

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mailfleet/mailfleet/spec"
)

// Row is one line of an import file.
//
// The file is CSV with the columns
//
//	address,password,instance,quota
//
// password is the clear text or an {SSHA} hash (taken as is); instance
// (a mail_instance name) and quota (500M, 2G, bytes) may be empty, and
// trailing empty columns may be left out. A first line starting with the
// word "address" is a header; lines starting with # are comments.
type Row struct {
	Line     int
	Address  string
	Password string // clear text or {SSHA}
	Instance string
	Quota    *int64
}

// ReadCSV parses an import file. Errors name the line, never a password.
func ReadCSV(r io.Reader) ([]Row, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	var rows []Row
	seen := map[string]int{}
	var errs []error
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("line %d: %v", pe.Line, pe.Err)
			}
			return nil, err
		}
		if len(rows) == 0 && len(errs) == 0 && strings.EqualFold(strings.TrimSpace(rec[0]), "address") {
			continue
		}
		if len(rec) < 2 || len(rec) > 4 {
			errs = append(errs, fmt.Errorf("line %d: %d columns, want address,password[,instance[,quota]]", line, len(rec)))
			continue
		}
		addr, err := NormalizeAddress(strings.TrimSpace(rec[0]))
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", line, err))
			continue
		}
		row := Row{Line: line, Address: addr, Password: rec[1]}
		if row.Password == "" {
			errs = append(errs, fmt.Errorf("line %d: %s: empty password", line, addr))
			continue
		}
		if len(rec) > 2 {
			row.Instance = strings.TrimSpace(rec[2])
		}
		if len(rec) > 3 && strings.TrimSpace(rec[3]) != "" {
			q, err := spec.ParseSize(rec[3])
			if err != nil {
				errs = append(errs, fmt.Errorf("line %d: %s: %w", line, addr, err))
				continue
			}
			row.Quota = &q
		}
		if prev, dup := seen[addr]; dup {
			errs = append(errs, fmt.Errorf("line %d: %s is already on line %d", line, addr, prev))
			continue
		}
		seen[addr] = line
		rows = append(rows, row)
	}
	return rows, errors.Join(errs...)
}

// ImportOptions tune Import.
type ImportOptions struct {
	Workers  int                   // parallel adds, default 16
	Progress func(done, total int) // called after each row, from any worker
}

// ImportSummary counts what Import did.
type ImportSummary struct {
	Total, Created, Skipped, Failed int
	Adopted                         int // mailboxes without entry reused
	Errors                          []error
	ByInstance                      map[string]int
}

// Import creates every row's account that does not exist yet (an address
// with a directory entry is skipped, so an interrupted import is resumed by
// running it again). The directory and the instances are read once at the
// start; least_used counts are kept here from then on.
func (s *Site) Import(ctx context.Context, rows []Row, opts ImportOptions) (ImportSummary, error) {
	sum := ImportSummary{Total: len(rows), ByInstance: map[string]int{}}
	workers := opts.Workers
	if workers <= 0 {
		workers = 16
	}
	first, err := s.Session()
	if err != nil {
		return sum, err
	}
	snap, err := first.Snapshot(ctx)
	first.Close()
	if err != nil {
		return sum, err
	}
	exists := map[string]bool{}
	for _, e := range snap.Entries {
		exists[e.Address] = true
	}
	orphan := map[string]string{}
	var mu sync.Mutex
	counts := map[string]int{}
	for _, name := range s.Names {
		counts[name] = len(snap.Mailboxes[name])
		for addr := range snap.Mailboxes[name] {
			if !exists[addr] {
				orphan[addr] = name
			}
		}
	}
	for _, r := range rows {
		if r.Instance != "" {
			if _, err := s.Instance(r.Instance); err != nil {
				return sum, fmt.Errorf("line %d: %w", r.Line, err)
			}
		}
	}
	var done atomic.Int64
	jobs := make(chan Row)
	var wg sync.WaitGroup
	var fatal error
	for w := 0; w < workers; w++ {
		ss, err := s.Session()
		if err != nil {
			fatal = err
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ss.Close()
			for r := range jobs {
				var err error
				var res AddResult
				if exists[r.Address] {
					mu.Lock()
					sum.Skipped++
					mu.Unlock()
				} else {
					req := AddRequest{Address: r.Address, Instance: r.Instance, Quota: r.Quota, known: true, orphanOn: orphan[r.Address],
						counts: func() map[string]int {
							mu.Lock()
							defer mu.Unlock()
							c := make(map[string]int, len(counts))
							for k, v := range counts {
								c[k] = v
							}
							return c
						}}
					if IsHash(r.Password) {
						req.Hash = r.Password
					} else {
						req.Password = r.Password
					}
					res, err = ss.Add(ctx, req)
					mu.Lock()
					if err != nil {
						sum.Failed++
						sum.Errors = append(sum.Errors, fmt.Errorf("line %d: %w", r.Line, err))
					} else {
						sum.Created++
						sum.ByInstance[res.Instance]++
						if res.Adopted {
							sum.Adopted++
						} else {
							counts[res.Instance]++
						}
					}
					mu.Unlock()
				}
				n := done.Add(1)
				if opts.Progress != nil {
					opts.Progress(int(n), len(rows))
				}
			}
		}()
	}
	if fatal == nil {
	feed:
		for _, r := range rows {
			select {
			case jobs <- r:
			case <-ctx.Done():
				fatal = ctx.Err()
				break feed
			}
		}
	}
	close(jobs)
	wg.Wait()
	return sum, fatal
}
