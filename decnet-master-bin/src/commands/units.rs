//! The systemd units `decnet init --systemd` writes, and their environment files.
//!
//! Each unit is as tight as its work allows; what stays open and why is in
//! `docs/operations.md` (embedded here as [`OPERATIONS_DOC`] and installed next to the
//! environment files, so `Documentation=` names a file that exists on the host):
//!
//! - `decnet-master.service` without local deckies (`serve --no-local`): no capabilities, a
//!   user namespace, no devices, a system-call allow list, Internet, Unix and netlink sockets
//!   only. `systemd-analyze security --offline=yes` scores it 1.5 (the
//!   others 2.0).
//! - with local deckies it talks to Docker and makes the host's macvlan link: it keeps
//!   `CAP_NET_ADMIN`/`CAP_NET_RAW` and the host's user namespace, and orders itself after
//!   `docker.service`.
//! - `decnet-agent.service` does the same work as a master with local deckies, and may also
//!   self-destruct through `systemd-run`.

use std::path::{Path, PathBuf};

/// Unit file names.
pub const MASTER_UNIT: &str = "decnet-master.service";
pub const AGENT_UNIT: &str = "decnet-agent.service";
pub const TARGET_UNIT: &str = "decnet.target";
/// The variable of the agent's environment file that lists what self-destruct may remove.
pub const REAPER_PATHS_VAR: &str = "DECNET_REAPER_PATHS";
/// The master's environment file, next to the agent's.
pub const MASTER_ENV: &str = "master.env";
/// The operations guide, next to the environment files (`Documentation=` of every unit).
pub const OPERATIONS_FILE: &str = "operations.md";
/// `docs/operations.md`, installed by `decnet init --systemd`.
pub const OPERATIONS_DOC: &str = include_str!("../../../docs/operations.md");
/// The agent's default directories (`DECNET_AGENT_DIR`, `DECNET_STATE_DIR`), which its unit
/// may write.
pub const AGENT_DIR: &str = "/etc/decnet/agent";
pub const AGENT_STATE_DIR: &str = "/var/lib/decnet/agent";

/// What a unit needs to know about where things are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitPaths {
    /// The `decnet` executable.
    pub decnet: PathBuf,
    /// The `decnet-agent` executable.
    pub agent: PathBuf,
    /// The master's data dir.
    pub data_dir: PathBuf,
    /// `EnvironmentFile=` of each unit.
    pub master_env: PathBuf,
    pub agent_env: PathBuf,
    /// The installed operations guide.
    pub doc: PathBuf,
}

/// Escapes `%` (a unit-file specifier).
fn unit_escape(path: &Path) -> String {
    path.to_string_lossy().replace('%', "%%")
}

/// `ProtectHome=` for a master whose data dir may live under a home directory.
fn protect_home(data_dir: &Path) -> &'static str {
    if ["/home", "/root", "/run/user"]
        .iter()
        .any(|h| data_dir.starts_with(h))
    {
        "read-only"
    } else {
        "yes"
    }
}

/// The sandbox every DECNET unit shares: no new privileges, a read-only system, private
/// /tmp, no kernel tunables, modules, logs or clock, no exotic sockets or namespaces, the
/// system-service call set without privileged or resource calls.
const COMMON_SANDBOX: &str = "\
NoNewPrivileges=yes
ProtectSystem=strict
PrivateTmp=yes
PrivateMounts=yes
ProtectHostname=yes
ProtectClock=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
KeyringMode=private
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
UMask=0077
";

/// `decnet-master.service`. `local_deckies`: the master also runs deckies on this host
/// through Docker (then it needs the Docker socket, the host's network namespace and
/// `CAP_NET_ADMIN`); without, it runs `serve --no-local` with no capability at all.
pub fn master_unit(paths: &UnitPaths, local_deckies: bool) -> String {
    let exe = unit_escape(&paths.decnet);
    let dir = unit_escape(&paths.data_dir);
    let env = unit_escape(&paths.master_env);
    let doc = unit_escape(&paths.doc);
    let home = protect_home(&paths.data_dir);
    let (after, no_local, isolation) = if local_deckies {
        (
            " docker.service\nWants=docker.service",
            "",
            // Docker and netlink on the host: the host's user namespace, CAP_NET_ADMIN for
            // the host-side macvlan link, CAP_NET_RAW for its gratuitous ARP.
            "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW\n\
             AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW\n\
             PrivateDevices=yes\n\
             ProtectProc=invisible\n\
             ProcSubset=pid\n\
             RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK\n",
        )
    } else {
        (
            "",
            " --no-local",
            "CapabilityBoundingSet=\n\
             AmbientCapabilities=\n\
             PrivateUsers=yes\n\
             PrivateDevices=yes\n\
             DevicePolicy=closed\n\
             ProtectProc=invisible\n\
             ProcSubset=pid\n\
             RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK\n",
        )
    };
    format!(
        "# Written by `decnet init --systemd`. Settings: {env} (see {doc}).\n\
         [Unit]\n\
         Description=DECNET master (operator API, swarm endpoint)\n\
         Documentation=file:{doc}\n\
         Wants=network-online.target\n\
         After=network-online.target{after}\n\
         PartOf={TARGET_UNIT}\n\
         \n\
         [Service]\n\
         Type=simple\n\
         EnvironmentFile=-{env}\n\
         ExecStart={exe} serve --data-dir {dir}{no_local}\n\
         Restart=on-failure\n\
         RestartSec=5\n\
         RestartPreventExitStatus=2\n\
         ReadWritePaths={dir}\n\
         ProtectHome={home}\n\
         {isolation}\
         {COMMON_SANDBOX}\
         \n\
         [Install]\n\
         WantedBy={TARGET_UNIT}\n"
    )
}

/// `decnet-agent.service`: Docker, netlink with `CAP_NET_ADMIN`, writes its agent dir
/// (certificate renewal) and state dir; self-destruct goes through `systemd-run` (D-Bus).
pub fn agent_unit(paths: &UnitPaths) -> String {
    let exe = unit_escape(&paths.agent);
    let env = unit_escape(&paths.agent_env);
    let doc = unit_escape(&paths.doc);
    format!(
        "# Written by `decnet init --systemd`. Settings: {env} (see {doc}).\n\
         [Unit]\n\
         Description=DECNET worker agent\n\
         Documentation=file:{doc}\n\
         Wants=network-online.target docker.service\n\
         After=network-online.target docker.service\n\
         PartOf={TARGET_UNIT}\n\
         \n\
         [Service]\n\
         Type=simple\n\
         EnvironmentFile=-{env}\n\
         ExecStart={exe} serve\n\
         Restart=on-failure\n\
         RestartSec=5\n\
         RestartPreventExitStatus=2\n\
         StateDirectory=decnet/agent\n\
         StateDirectoryMode=0700\n\
         ReadWritePaths=-{AGENT_DIR}\n\
         ProtectHome=yes\n\
         CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW\n\
         AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW\n\
         PrivateDevices=yes\n\
         ProtectProc=invisible\n\
         ProcSubset=pid\n\
         RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK\n\
         {COMMON_SANDBOX}\
         \n\
         [Install]\n\
         WantedBy={TARGET_UNIT}\n"
    )
}

/// `decnet.target`.
pub fn target_unit() -> String {
    format!(
        "# Written by `decnet init --systemd`.\n\
         [Unit]\n\
         Description=DECNET honeypot deception network\n\
         Wants={MASTER_UNIT} {AGENT_UNIT}\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

/// The first lines of a new agent environment file: every setting of `decnet-agent serve`,
/// commented out with its default.
pub const AGENT_ENV_HEADER: &str = "\
# Environment of decnet-agent.service (written by `decnet init --systemd`).
# Every `decnet-agent serve` flag has a variable; uncomment to set (defaults shown).
#DECNET_INTERFACE=eth0
#DECNET_AGENT_HOST=0.0.0.0
#DECNET_AGENT_PORT=8765
#DECNET_AGENT_DIR=/etc/decnet/agent
#DECNET_STATE_DIR=/var/lib/decnet/agent
#DECNET_METRICS_BIND=127.0.0.1:8766
#DECNET_HEARTBEAT_INTERVAL=30
#DECNET_NETWORK=decnet_lan
#DECNET_DECKY_BIN=/usr/local/bin/decnet-decky
#DECNET_NO_HOST_LINK=false
#DECNET_HOST_LINK_NAME=decnet_macvlan0
#DECNET_BODY_LIMIT=2097152
#DECNET_LOG=info
";

/// The first lines of a new master environment file.
pub const MASTER_ENV_HEADER: &str = "\
# Environment of decnet-master.service (written by `decnet init --systemd`).
# Every `decnet serve` flag has a variable; uncomment to set (defaults shown).
#DECNET_DB=sqlite:///var/lib/decnet/decnet.db
#DECNET_API_BIND=127.0.0.1:8000
#DECNET_SWARM_BIND=0.0.0.0:8770
#DECNET_ADVERTISE=https://master.example:8770
#DECNET_FLEET_LIMIT=256
#DECNET_HEARTBEAT_INTERVAL=30
#DECNET_NETWORK=decnet_lan
#DECNET_NO_HOST_LINK=false
#DECNET_HOST_LINK_NAME=decnet_macvlan0
#DECNET_LOG=info
";

/// `existing` with `var=value` set: every other line is kept, earlier lines of `var`
/// (`export` or not) are replaced; an empty file starts with `header`.
pub fn merge_env_var(existing: &str, header: &str, var: &str, value: &str) -> String {
    let mut out = String::new();
    for line in existing.lines() {
        let key = line.trim_start().trim_start_matches("export ").trim_start();
        if key.starts_with(&format!("{var}=")) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if out.is_empty() {
        out.push_str(header);
    }
    out.push_str(&format!("{var}={value}\n"));
    out
}

/// The agent's environment file with `DECNET_REAPER_PATHS=<paths joined by ':'>`: every
/// other line of `existing` is kept; earlier `DECNET_REAPER_PATHS` lines are replaced.
pub fn merge_env_file(existing: &str, reaper_paths: &[PathBuf]) -> String {
    let joined: Vec<String> = reaper_paths
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    merge_env_var(
        existing,
        AGENT_ENV_HEADER,
        REAPER_PATHS_VAR,
        &joined.join(":"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(data_dir: &str) -> UnitPaths {
        UnitPaths {
            decnet: "/usr/local/bin/decnet".into(),
            agent: "/usr/local/bin/decnet-agent".into(),
            data_dir: data_dir.into(),
            master_env: "/etc/decnet/master.env".into(),
            agent_env: "/etc/decnet/agent.env".into(),
            doc: "/etc/decnet/operations.md".into(),
        }
    }

    #[test]
    fn master_units_differ_by_local_deckies() {
        let m = master_unit(&paths("/var/lib/decnet"), false);
        for line in [
            "ExecStart=/usr/local/bin/decnet serve --data-dir /var/lib/decnet --no-local\n",
            "EnvironmentFile=-/etc/decnet/master.env\n",
            "Documentation=file:/etc/decnet/operations.md\n",
            "CapabilityBoundingSet=\n",
            "PrivateUsers=yes\n",
            "ReadWritePaths=/var/lib/decnet\n",
            "ProtectHome=yes\n",
            "After=network-online.target\n",
        ] {
            assert!(m.contains(line), "{line}\n{m}");
        }
        assert!(!m.contains("docker"), "{m}");
        let l = master_unit(&paths("/var/lib/decnet"), true);
        for line in [
            "ExecStart=/usr/local/bin/decnet serve --data-dir /var/lib/decnet\n",
            "After=network-online.target docker.service\n",
            "Wants=docker.service\n",
            "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW\n",
        ] {
            assert!(l.contains(line), "{line}\n{l}");
        }
        assert!(!l.contains("PrivateUsers"), "{l}");
        let m = master_unit(&paths("/home/op/.decnet"), false);
        assert!(m.contains("ProtectHome=read-only\n"));
        let m = master_unit(&paths("/srv/50%"), false);
        assert!(m.contains("--data-dir /srv/50%% --no-local\n"));
    }

    #[test]
    fn agent_unit_takes_its_settings_from_the_env_file() {
        let a = agent_unit(&paths("/var/lib/decnet"));
        for line in [
            "ExecStart=/usr/local/bin/decnet-agent serve\n",
            "EnvironmentFile=-/etc/decnet/agent.env\n",
            "After=network-online.target docker.service\n",
            "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW\n",
            "ReadWritePaths=-/etc/decnet/agent\n",
            "StateDirectory=decnet/agent\n",
        ] {
            assert!(a.contains(line), "{line}\n{a}");
        }
        assert!(AGENT_ENV_HEADER.contains("#DECNET_INTERFACE="));
        let t = target_unit();
        assert!(t.contains("Wants=decnet-master.service decnet-agent.service\n"));
        assert!(t.contains("WantedBy=multi-user.target\n"));
    }

    #[test]
    fn env_file_keeps_other_lines_and_replaces_reaper_paths() {
        let paths = vec![
            PathBuf::from("/a/u.service"),
            PathBuf::from("/b/decnet-agent"),
        ];
        let fresh = merge_env_file("", &paths);
        assert!(fresh.starts_with(AGENT_ENV_HEADER));
        assert!(fresh.ends_with("DECNET_REAPER_PATHS=/a/u.service:/b/decnet-agent\n"));
        let merged = merge_env_file(
            "DECNET_INTERFACE=eth0\nDECNET_REAPER_PATHS=/old\nexport DECNET_REAPER_PATHS=/older\n",
            &paths,
        );
        assert_eq!(
            merged,
            "DECNET_INTERFACE=eth0\nDECNET_REAPER_PATHS=/a/u.service:/b/decnet-agent\n"
        );
        assert_eq!(merge_env_file(&merged, &paths), merged, "idempotent");
    }
}
