package initd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// Systemctl is `mailfleet lab systemctl ARGS…`: a systemctl that talks to
// the lab supervisor. Exit codes follow systemctl: 0 success, 1 failure,
// 3 is-active/status of an inactive unit, 4 status of an unknown unit,
// 5 start/stop of an unknown unit. Without a supervisor only the unit file
// verbs (enable, disable, is-enabled, mask, unmask, daemon-reload, cat,
// list-unit-files) work.
func Systemctl(args []string) int {
	req, root, err := parseSystemctlArgs(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "systemctl: %v\n", err)
		return 1
	}
	if req.Verb == "--version" {
		fmt.Println("systemd 252 (mailfleet lab)")
		return 0
	}
	if req.Verb == "" {
		req.Verb = "list-units"
	}
	sock := os.Getenv(SocketEnv)
	if sock == "" {
		sock = DefaultSocket
	}
	var resp response
	if root == "" {
		resp, err = call(sock, req)
	} else {
		err = errNotBooted
	}
	if err != nil {
		if !fileVerbs[req.Verb] {
			fmt.Fprintln(os.Stderr, errNotBooted)
			return 1
		}
		var out, errOut bytes.Buffer
		code := fileVerb(&loader{root: root}, req, &out, &errOut)
		if code == 0 && req.Now && (req.Verb == "enable" || req.Verb == "disable" || req.Verb == "reenable") {
			errOut.WriteString(errNotBooted.Error() + "\n")
			code = 1
		}
		resp = response{Stdout: out.String(), Stderr: errOut.String(), Code: code}
	}
	os.Stdout.WriteString(resp.Stdout)
	os.Stderr.WriteString(resp.Stderr)
	return resp.Code
}

// call sends one request to the supervisor.
func call(sock string, req request) (response, error) {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return response{}, err
	}
	defer c.Close()
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		return response{}, err
	}
	line, err := readLine(bufio.NewReader(c), 64<<20)
	if err != nil {
		return response{}, fmt.Errorf("supervisor closed the connection: %w", err)
	}
	var resp response
	if err := json.Unmarshal(line, &resp); err != nil {
		return response{}, err
	}
	return resp, nil
}

// parseSystemctlArgs understands the verbs and the options deploy
// scripts use; options may come anywhere.
func parseSystemctlArgs(args []string) (request, string, error) {
	var req request
	root := ""
	var words []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		val := func(name string) (string, error) {
			if _, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(a, "--") {
				return v, nil
			}
			if !strings.HasPrefix(a, "--") && len(a) > 2 {
				return a[2:], nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("option '%s' requires an argument", name)
			}
			i++
			return args[i], nil
		}
		if a == "--" {
			words = append(words, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			words = append(words, a)
			continue
		}
		name, _, _ := strings.Cut(a, "=")
		switch {
		case a == "--version":
			req.Verb = "--version"
			return req, root, nil
		case a == "-q" || a == "--quiet":
			req.Quiet = true
		case a == "--no-block":
			req.NoBlock = true
		case a == "--now":
			req.Now = true
		case a == "-f" || a == "--force":
			req.Force = true
		case a == "--value":
			req.Value = true
		case a == "-a" || a == "--all":
			req.All = true
		case a == "--no-pager", a == "--system", a == "--no-ask-password", a == "--full", a == "-l",
			a == "--plain", a == "--no-legend", a == "--no-reload", a == "--runtime", a == "--no-warn",
			name == "--type", name == "--state", a == "--failed", name == "--job-mode", a == "--show-types":
		case name == "--root":
			v, err := val("--root")
			if err != nil {
				return req, "", err
			}
			root = v
		case name == "--property" || strings.HasPrefix(a, "-p"):
			v, err := val("--property")
			if err != nil {
				return req, "", err
			}
			req.Props = append(req.Props, v)
		case name == "--signal" || strings.HasPrefix(a, "-s"):
			v, err := val("--signal")
			if err != nil {
				return req, "", err
			}
			req.Signal = v
		case name == "--kill-whom" || name == "--kill-who":
			v, err := val(name)
			if err != nil {
				return req, "", err
			}
			req.Whom = v
		case name == "--lines" || strings.HasPrefix(a, "-n"):
			v, err := val("--lines")
			if err != nil {
				return req, "", err
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				return req, "", fmt.Errorf("failed to parse lines '%s'", v)
			}
			if n == 0 {
				n = -1
			}
			req.Lines = n
		default:
			return req, "", fmt.Errorf("unrecognized option '%s'", a)
		}
	}
	if len(words) > 0 {
		req.Verb = words[0]
		req.Units = words[1:]
	}
	return req, root, nil
}
