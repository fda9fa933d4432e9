#!/usr/bin/env python3
"""Send a message to each account through the balancer's SMTP VIP and read
it back through the IMAP and POP3 VIPs, with Python's own clients, STARTTLS
and certificate checking on every hop.

Usage: mailcheck.py --ca CA --smtp HOST:PORT --imap HOST:PORT --pop3 HOST:PORT
                    ADDRESS:PASSWORD_FILE...

Exit 0 when every account got its message over both protocols; otherwise 1
with what went wrong. Used by the README's demo and the lab's end-to-end test.
"""
import argparse
import email.message
import imaplib
import poplib
import smtplib
import ssl
import sys
import time
import uuid


def hostport(s):
    h, _, p = s.rpartition(":")
    return h, int(p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ca", required=True)
    ap.add_argument("--smtp", required=True, type=hostport)
    ap.add_argument("--imap", required=True, type=hostport)
    ap.add_argument("--pop3", required=True, type=hostport)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--min-messages", type=int, default=1,
                    help="each INBOX must hold at least this many messages (mail from earlier runs included)")
    ap.add_argument("accounts", nargs="+", help="ADDRESS:PASSWORD_FILE")
    a = ap.parse_args()
    ctx = ssl.create_default_context(cafile=a.ca)
    accounts = []
    for spec in a.accounts:
        addr, _, pwfile = spec.partition(":")
        with open(pwfile) as f:
            accounts.append((addr, f.readline().rstrip("\n")))

    tokens = {}
    with smtplib.SMTP(a.smtp[0], a.smtp[1], timeout=30) as s:
        s.ehlo("workstation.lab")
        s.starttls(context=ctx)
        s.ehlo("workstation.lab")
        for addr, _ in accounts:
            tok = uuid.uuid4().hex
            m = email.message.EmailMessage()
            m["From"] = "lab@example.net"
            m["To"] = addr
            m["Subject"] = "mailfleet lab " + tok
            m.set_content("Hello %s, this went through the balancer.\n" % addr)
            s.send_message(m, from_addr="lab@example.net", to_addrs=[addr])
            tokens[addr] = tok
            print("sent     %s via SMTP %s:%d" % (addr, *a.smtp))

    failures = []
    for addr, pw in accounts:
        tok = tokens[addr]
        deadline = time.time() + a.timeout
        found = False
        while not found and time.time() < deadline:
            im = imaplib.IMAP4(a.imap[0], a.imap[1], timeout=30)
            try:
                im.starttls(ssl_context=ctx)
                im.login(addr, pw)
                im.select("INBOX", readonly=True)
                typ, data = im.search(None, "SUBJECT", tok)
                found = typ == "OK" and data and data[0].split()
                typ, data = im.search(None, "ALL")
                held = len(data[0].split()) if typ == "OK" and data else 0
                im.logout()
            except Exception:
                im.shutdown()
                raise
            if not found:
                time.sleep(0.5)
        if not found:
            failures.append("%s: the message did not arrive in INBOX over IMAP" % addr)
            continue
        if held < a.min_messages:
            failures.append("%s: INBOX holds %d messages, want at least %d" % (addr, held, a.min_messages))
            continue
        print("read     %s via IMAP %s:%d (%d in INBOX)" % (addr, *a.imap, held))

        p = poplib.POP3(a.pop3[0], a.pop3[1], timeout=30)
        try:
            p.stls(context=ctx)
            p.user(addr)
            p.pass_(pw)
            count, _ = p.stat()
            seen = False
            for i in range(1, count + 1):
                _, lines, _ = p.top(i, 0)
                if any(tok.encode() in l for l in lines):
                    seen = True
            p.quit()
        except Exception:
            p.close()
            raise
        if not seen:
            failures.append("%s: the message is not in the POP3 maildrop" % addr)
            continue
        print("read     %s via POP3 %s:%d" % (addr, *a.pop3))

    for f in failures:
        print("FAIL     " + f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
