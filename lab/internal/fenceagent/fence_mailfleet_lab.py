#!/usr/bin/python3
# fence_mailfleet_lab: fence agent of the mailfleet lab's power switch
# (`mailfleet lab pdu`). fence-agents interface: options as key=value lines on
# standard input, or -o ACTION -n PLUG -a IP -u PORT -l LOGIN -p PASSWORD.
# Exit status: 0 success, 1 failure, 2 the plug is off (action status).
import socket
import sys

DEFAULT_PORT = 1161

METADATA = """<?xml version="1.0" ?>
<resource-agent name="fence_mailfleet_lab" shortdesc="Fence agent for the mailfleet lab's power switch">
<longdesc>fence_mailfleet_lab powers mailfleet lab nodes off and on through the lab's power switch (mailfleet lab pdu), as fence_apc does with an APC switch.</longdesc>
<vendor-url>https://github.com/mailfleet/mailfleet</vendor-url>
<parameters>
	<parameter name="action" unique="0" required="1">
		<getopt mixed="-o, --action=[action]" />
		<content type="string" default="reboot"  />
		<shortdesc lang="en">Fencing action</shortdesc>
	</parameter>
	<parameter name="ip" unique="0" required="1" obsoletes="ipaddr">
		<getopt mixed="-a, --ip=[ip]" />
		<content type="string"  />
		<shortdesc lang="en">IP address or hostname of fencing device</shortdesc>
	</parameter>
	<parameter name="ipaddr" unique="0" required="1" deprecated="1">
		<getopt mixed="-a, --ip=[ip]" />
		<content type="string"  />
		<shortdesc lang="en">IP address or hostname of fencing device</shortdesc>
	</parameter>
	<parameter name="ipport" unique="0" required="0">
		<getopt mixed="-u, --ipport=[port]" />
		<content type="integer" default="1161"  />
		<shortdesc lang="en">TCP port to use for connection with device</shortdesc>
	</parameter>
	<parameter name="username" unique="0" required="0" obsoletes="login">
		<getopt mixed="-l, --username=[name]" />
		<content type="string"  />
		<shortdesc lang="en">Login name</shortdesc>
	</parameter>
	<parameter name="login" unique="0" required="0" deprecated="1">
		<getopt mixed="-l, --username=[name]" />
		<content type="string"  />
		<shortdesc lang="en">Login name</shortdesc>
	</parameter>
	<parameter name="password" unique="0" required="0" obsoletes="passwd">
		<getopt mixed="-p, --password=[password]" />
		<content type="string"  />
		<shortdesc lang="en">Login password or passphrase</shortdesc>
	</parameter>
	<parameter name="passwd" unique="0" required="0" deprecated="1">
		<getopt mixed="-p, --password=[password]" />
		<content type="string"  />
		<shortdesc lang="en">Login password or passphrase</shortdesc>
	</parameter>
	<parameter name="plug" unique="0" required="1" obsoletes="port">
		<getopt mixed="-n, --plug=[id]" />
		<content type="string"  />
		<shortdesc lang="en">Physical plug number on device, or the node's name</shortdesc>
	</parameter>
	<parameter name="port" unique="0" required="1" deprecated="1">
		<getopt mixed="-n, --plug=[id]" />
		<content type="string"  />
		<shortdesc lang="en">Physical plug number on device, or the node's name</shortdesc>
	</parameter>
	<parameter name="nodename" unique="0" required="0">
		<content type="string"  />
		<shortdesc lang="en">Name of the node to be fenced (unused)</shortdesc>
	</parameter>
</parameters>
<actions>
	<action name="on" automatic="0"/>
	<action name="off" />
	<action name="reboot" />
	<action name="status" />
	<action name="list" />
	<action name="list-status" />
	<action name="monitor" />
	<action name="metadata" />
	<action name="manpage" />
	<action name="validate-all" />
</actions>
</resource-agent>
"""

ALIASES = {
    "ipaddr": "ip", "ipport": "ipport", "login": "username", "passwd": "password",
    "port": "plug", "option": "action",
}

FLAGS = {
    "-o": "action", "--action": "action", "-n": "plug", "--plug": "plug",
    "-a": "ip", "--ip": "ip", "-u": "ipport", "--ipport": "ipport",
    "-l": "username", "--username": "username", "-p": "password", "--password": "password",
}


def parse_args(argv):
    opts = {}
    i = 0
    while i < len(argv):
        a = argv[i]
        if "=" in a and a.startswith("--"):
            k, v = a.split("=", 1)
            if k in FLAGS:
                opts[FLAGS[k]] = v
            i += 1
            continue
        if a in FLAGS and i + 1 < len(argv):
            opts[FLAGS[a]] = argv[i + 1]
            i += 2
            continue
        i += 1
    return opts


def parse_stdin(text):
    opts = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, v = line.split("=", 1)
        k = k.strip()
        opts[ALIASES.get(k, k)] = v.strip()
    return opts


class Switch:
    def __init__(self, opts):
        self.sock = socket.create_connection((opts["ip"], int(opts.get("ipport") or DEFAULT_PORT)), timeout=10)
        self.f = self.sock.makefile("rw", encoding="utf-8", newline="\n")
        greeting = self.f.readline()
        if not greeting.startswith("MAILFLEET-PDU"):
            raise RuntimeError("not a mailfleet lab power switch: %r" % greeting.strip())
        self.call("auth %s %s" % (opts.get("username") or "-", opts.get("password", "")))

    def call(self, line):
        self.f.write(line + "\n")
        self.f.flush()
        reply = self.f.readline().strip()
        if not reply.startswith("ok"):
            raise RuntimeError(reply or "connection closed")
        return reply[2:].strip()

    def close(self):
        try:
            self.f.write("quit\n")
            self.f.flush()
        except OSError:
            pass
        self.sock.close()


def main():
    opts = parse_args(sys.argv[1:])
    if not sys.argv[1:] and not sys.stdin.isatty():
        opts = parse_stdin(sys.stdin.read())
    action = opts.get("action", "reboot")
    if action in ("metadata", "manpage"):
        sys.stdout.write(METADATA)
        return 0
    if not opts.get("ip"):
        sys.stderr.write("fence_mailfleet_lab: ip (ipaddr, -a) is required\n")
        return 1
    needs_plug = action in ("on", "off", "reboot", "status")
    if needs_plug and not opts.get("plug"):
        sys.stderr.write("fence_mailfleet_lab: plug (port, -n) is required for %s\n" % action)
        return 1
    if action == "validate-all":
        return 0
    try:
        sw = Switch(opts)
        try:
            plug = opts.get("plug", "")
            if action == "status":
                state = sw.call("status " + plug)
                print("Status: " + state.upper())
                return 0 if state == "on" else 2
            if action == "off":
                sw.call("off " + plug)
                print("Success: Powered OFF")
                return 0
            if action == "on":
                sw.call("on " + plug)
                print("Success: Powered ON")
                return 0
            if action == "reboot":
                sw.call("off " + plug)
                sw.call("on " + plug)
                print("Success: Rebooted")
                return 0
            if action in ("list", "list-status"):
                for item in sw.call("list").split():
                    num, node, state = (item.split(":") + ["", ""])[:3]
                    if action == "list":
                        print("%s,%s" % (num, node))
                    else:
                        print("%s,%s,%s" % (num, node, state.upper()))
                return 0
            if action == "monitor":
                return 0
            sys.stderr.write("fence_mailfleet_lab: unknown action %s\n" % action)
            return 1
        finally:
            sw.close()
    except Exception as e:  # a fence agent reports and fails, never hangs
        sys.stderr.write("fence_mailfleet_lab: %s: %s\n" % (action, e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
