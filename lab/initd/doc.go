// Package initd is the lab's stand-in for systemd inside one node
// (`mailfleet lab init`), its systemctl (`mailfleet lab systemctl`) and
// sysctl (`mailfleet lab sysctl`) shims. Deploy actions written for real
// machines (`systemctl restart corosync pacemaker`, `systemctl enable
// --quiet X && systemctl restart X`, `systemctl reload-or-restart
// keepalived`, `systemctl daemon-reload`, `sysctl -p FILE`) run unchanged in
// a lab node.
//
// # Units
//
// Units are looked up in /etc/systemd/system, /run/systemd/system,
// /lib/systemd/system and /usr/lib/systemd/system, first match wins. A name
// without a suffix is a service. Template instances (p@i.service) use
// p@.service with the specifiers %n %N %p %P %i %I %j %f %H %t %S %C %L %E %T
// %V %h %u %U %% expanded. Drop-ins (service.d/, prefix-.service.d/,
// template and alias .d/ directories, UNIT.d/) are merged in file-name
// order, the first search directory winning for one file name. Aliases
// come from symlinks and from [Install] Alias= (so bind9 finds named and
// sshd finds ssh even before they are enabled). A unit file linked to
// /dev/null is masked. Targets and other non-service units are always
// active no-ops; a few base-system services (dbus, systemd-*, gettys,
// e2scrub, cron, rsyslog) are never run in the lab, even when a unit
// Wants= them. Units that cannot work as written outside a real systemd
// get a built-in adjustment applied before their drop-ins (labQuirks:
// keepalived, which notifies only a PID 1 named systemd, runs as
// Type=simple and is ready once its PID file exists); systemctl status
// shows it on a "Lab:" line.
//
// Honoured: [Unit] Description, Requires, Wants, BindsTo (as Requires),
// PartOf (stop and restart propagate), After, Before, Condition*= (PathExists, PathExistsGlob,
// PathIsDirectory, PathIsSymbolicLink, PathIsReadWrite, FileNotEmpty,
// FileIsExecutable, DirectoryNotEmpty, with "!" and "|"; the others, such as
// ConditionKernelCommandLine or ConditionVirtualization, hold), Assert*=
// (same tests; a false one fails the start), StartLimitBurst,
// StartLimitIntervalSec. [Service] Type (simple, exec, forking with PIDFile
// or a guessed main PID, oneshot with RemainAfterExit, notify and
// notify-reload with NOTIFY_SOCKET, READY=1, MAINPID=, STATUS=; dbus and idle
// as simple), ExecCondition, ExecStartPre, ExecStart, ExecStartPost,
// ExecReload, ExecStop, ExecStopPost (prefixes "-" honoured, "@" honoured,
// "+" "!" "!!" run as root, ":" tolerated; $VAR as a word splits, ${VAR}
// does not, $$ is $; $MAINPID), Environment, EnvironmentFile (with "-"),
// User, Group, SupplementaryGroups (and the user's groups), WorkingDirectory
// (with "-" and "~"), Restart (no, always, on-success, on-failure,
// on-abnormal, on-abort), RestartSec (default 100ms),
// RestartPreventExitStatus, SuccessExitStatus, KillMode (control-group,
// mixed, process, none), KillSignal, SendSIGKILL, TimeoutSec,
// TimeoutStartSec (default 90s, on timeout the start fails),
// TimeoutStopSec (default 90s, capped at 30s in the lab),
// RuntimeDirectory, StateDirectory, LogsDirectory, CacheDirectory,
// ConfigurationDirectory and their …Mode (owned by User=),
// RuntimeDirectoryPreserve=yes, LimitNOFILE (default 1024:524288, as
// systemd), AmbientCapabilities (for a User= other than root: what the
// rendered mailfleetd units need to bind the mail ports), UMask, Nice,
// StandardOutput/StandardError (null, inherit,
// file:, append:, truncate:; anything else, journal included, appends to
// /var/log/mailfleet-lab/UNIT.log). [Install] WantedBy, RequiredBy, Alias,
// Also, DefaultInstance.
//
// Accepted and ignored (the lab cannot or need not do them): PrivateTmp,
// PrivateDevices, PrivateNetwork, PrivateUsers, ProtectSystem, ProtectHome,
// ProtectKernelTunables, ProtectKernelModules, ProtectKernelLogs,
// ProtectControlGroups, ProtectClock, ProtectHostname, ProtectProc,
// ReadWritePaths, ReadOnlyPaths, InaccessiblePaths, NoNewPrivileges,
// CapabilityBoundingSet, SecureBits,
// SystemCallFilter, SystemCallArchitectures, RestrictAddressFamilies,
// RestrictNamespaces, RestrictRealtime, RestrictSUIDSGID,
// LockPersonality, MemoryDenyWriteExecute, DynamicUser, TasksMax,
// MemoryMax, MemoryLimit, CPUQuota, IOWeight, Slice, Delegate,
// OOMScoreAdjust, CPUSchedulingPolicy, IOSchedulingClass,
// LimitCORE and the other Limit*= than LimitNOFILE, NotifyAccess (every
// process of the unit may notify), WatchdogSec, GuessMainPID,
// PermissionsStartOnly, SyslogIdentifier, SyslogFacility,
// StandardInput (always /dev/null), KeyringMode, Documentation,
// DefaultDependencies, IgnoreOnIsolate, RefuseManualStart/Stop,
// OnFailure, JobTimeoutSec, Conflicts, Requisite.
//
// # Processes
//
// Every process of a service gets PATH, LANG=C.UTF-8, HOME (of User=),
// USER/LOGNAME/SHELL with User=, INVOCATION_ID, and NOTIFY_SOCKET for notify
// services. The supervisor is a child subreaper and reaps every process; a
// unit's processes are those carrying one of its INVOCATION_IDs in their
// environment plus the descendants of its main and control processes (the
// lab has no cgroups of its own), which KillMode=control-group signals.
// The specifiers %h, %u and %U are root's, whatever User= says.
//
// On SIGTERM or SIGINT the supervisor interrupts starts in progress, stops
// every unit (dependents first), then sends SIGTERM and, 5 s later,
// SIGKILL to what is left: KillMode=process leftovers such as sshd's
// sessions, SendSIGKILL=no survivors, orphans reparented to it. SIGHUP
// re-reads the unit files.
//
// # Jobs
//
// Starting a unit pulls in its Requires/Wants/BindsTo; jobs run in
// parallel except where After/Before order them; a failed Required
// dependency ordered before a unit fails that unit ("A dependency job …").
// Stopping a unit first stops the running units that Require, BindsTo or
// are PartOf it. Restarting a unit stops those dependents first and starts
// them again after it, as systemd propagates a restart to them as
// try-restart: `systemctl restart corosync` with pacemaker running
// (Requires=corosync, After=corosync) stops pacemaker, restarts corosync
// and starts pacemaker again.
//
// # Control
//
// The supervisor listens on a unix socket (default DefaultSocket, mode
// 0600); systemctl sends one JSON request line ({"verb": …, "units": […],
// flags…}) and reads one JSON response line ({"stdout", "stderr",
// "code"}). The socket path can be overridden for the client with the
// MAILFLEET_LAB_INIT_SOCKET environment variable.
// It is the init of a lab node: it imports nothing of mailfleet but
// internal/ leaves (never spec, render, remote or the daemons).
package initd
