package provision

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mailfleet/mailfleet/runtime/adminapi"
)

// DefaultDrain outlasts the front-ends' positive lookup cache (30 s): after
// it, no front-end routes the account to its old home.
const DefaultDrain = 35 * time.Second

// MoveResult says what Move did.
type MoveResult struct {
	From, To string
	Messages int64
}

// Move moves an account's mailbox to instance to without losing mail:
// the source is marked moving (deliveries get 451 4.2.1 and are retried
// by the sender, logins are refused for a moment; the mark returns once
// the messages being written are on disk, and a transaction whose RCPT
// was accepted before it gets the 451 at its end of data), its export is
// imported on the target (mailboxes, flags, UIDs, UIDVALIDITY), the
// entry's mailHost is switched, and after drain (while front-ends may
// still route there from their cache, the source keeps answering 451)
// the source is removed. Any failure before the switch unmarks the source
// and removes the copy, so the account stays where it was.
func (ss *Session) Move(ctx context.Context, address, to string, drain time.Duration) (MoveResult, error) {
	addr, err := NormalizeAddress(address)
	if err != nil {
		return MoveResult{}, err
	}
	e, err := ss.one(addr)
	if err != nil {
		return MoveResult{}, err
	}
	from := ss.InstanceOf(e.MailHost)
	if from == "" {
		return MoveResult{}, fmt.Errorf("%s: mailHost %q names no instance: run `mailfleet account check`", addr, e.MailHost)
	}
	dst, err := ss.Instance(to)
	if err != nil {
		return MoveResult{}, err
	}
	if from == to {
		return MoveResult{}, fmt.Errorf("%s already lives on %s", addr, to)
	}
	src := ss.Instances[from]
	if _, err := src.Account(ctx, addr); err != nil {
		return MoveResult{}, fmt.Errorf("%s: its mailbox on %s: %w", addr, from, err)
	}
	if mb, err := dst.Account(ctx, addr); err == nil && mb.Usage.Messages > 0 {
		return MoveResult{}, fmt.Errorf("%s: %s already holds a mailbox with %d messages for it: run `mailfleet account check`", addr, to, mb.Usage.Messages)
	} else if err != nil && !errors.Is(err, adminapi.ErrNotFound) {
		return MoveResult{}, err
	}
	if err := ss.EnsureDomain(ctx, domainOf(addr), ss.Chooser.DomainInstances(domainOf(addr), to)); err != nil {
		return MoveResult{}, err
	}
	if err := src.SetMoving(ctx, addr, true); err != nil {
		// It may be marked all the same (a 503 while deliveries were
		// still being written, a lost answer): unmark it, or it
		// refuses mail.
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if uerr := src.SetMoving(c, addr, false); uerr != nil {
			err = errors.Join(err, fmt.Errorf("unmarking %s on %s: %w", addr, from, uerr))
		}
		return MoveResult{}, fmt.Errorf("%s: move to %s abandoned, the account stays on %s: %w", addr, to, from, err)
	}
	undo := func(cause error) error {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		errs := []error{cause}
		if err := dst.DeleteAccount(c, addr); err != nil {
			errs = append(errs, fmt.Errorf("removing the partial copy on %s: %w", to, err))
		}
		if err := src.SetMoving(c, addr, false); err != nil {
			errs = append(errs, fmt.Errorf("unmarking %s on %s: %w", addr, from, err))
		}
		return fmt.Errorf("%s: move to %s abandoned, the account stays on %s: %w", addr, to, from, errors.Join(errs...))
	}
	tmp, err := os.CreateTemp("", "mailfleet-move-*.tar")
	if err != nil {
		return MoveResult{}, undo(err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := src.Export(ctx, addr, tmp); err != nil {
		return MoveResult{}, undo(err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return MoveResult{}, undo(err)
	}
	mb, err := dst.Import(ctx, addr, tmp)
	if err != nil {
		return MoveResult{}, undo(err)
	}
	srcMB, err := src.Account(ctx, addr)
	if err != nil {
		return MoveResult{}, undo(err)
	}
	if srcMB.Usage.Messages != mb.Usage.Messages {
		return MoveResult{}, undo(fmt.Errorf("the copy holds %d messages, the source %d", mb.Usage.Messages, srcMB.Usage.Messages))
	}
	if err := ss.Conn.SetMailHost(e.DN, dst.FQDN); err != nil {
		return MoveResult{}, undo(err)
	}
	// From here the account lives on the target. The source keeps
	// refusing deliveries with 451 until no cache routes there.
	select {
	case <-time.After(drain):
	case <-ctx.Done():
		return MoveResult{From: from, To: to, Messages: mb.Usage.Messages},
			fmt.Errorf("%s: moved to %s, but interrupted before removing the old copy on %s (it refuses mail): `mailfleet account check -fix` reports it", addr, to, from)
	}
	if err := src.DeleteAccount(ctx, addr); err != nil {
		return MoveResult{From: from, To: to, Messages: mb.Usage.Messages},
			fmt.Errorf("%s: moved to %s, but removing the old copy on %s failed: %w", addr, to, from, err)
	}
	return MoveResult{From: from, To: to, Messages: mb.Usage.Messages}, nil
}
