//! Command-line surface of `decnet` (PRODUCT §4).
//!
//! The doc comments here are clap's help text, shown as written: `<path>` placeholders stay
//! plain text rather than Markdown.
#![allow(rustdoc::invalid_html_tags)]

use std::net::Ipv4Addr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use decnet_core::model::{Mode, NetworkDriver};

#[derive(Debug, Parser)]
#[command(
    name = "decnet",
    version,
    about = "DECNET-rs: a honeypot deception network"
)]
pub struct Cli {
    /// Where this host's state lives (default /var/lib/decnet as root, else ~/.decnet).
    #[arg(long, global = true, env = "DECNET_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// Options of the Docker deployer on this host.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Docker (without a master)")]
pub struct DockerArgs {
    /// Docker network of the deckies.
    #[arg(long, env = "DECNET_NETWORK", default_value = "decnet_lan")]
    pub network_name: String,
    /// The decky binary (default: `decnet-decky` next to this executable).
    #[arg(long, env = "DECNET_DECKY_BIN")]
    pub decky_bin: Option<PathBuf>,
    /// Do not create the host-side macvlan link (the host then cannot reach its deckies).
    #[arg(long, env = "DECNET_NO_HOST_LINK")]
    pub no_host_link: bool,
    /// Name of the host-side macvlan link.
    #[arg(long, env = "DECNET_HOST_LINK_NAME", default_value = "decnet_macvlan0")]
    pub host_link_name: String,
    /// The `decnet.host` label of this host's deckies (default: the data dir's own identity,
    /// `<data-dir>/host-id`; tests keep apart with it).
    #[arg(long, hide = true)]
    pub host_label: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Plan and run a fleet of deckies (through the master when there is one, else on this host).
    #[command(
        after_help = "Examples:\n  decnet deploy --deckies 3 --services ssh,http --interface eth0\n  decnet deploy --deckies 5 --randomize-services --dry-run --json\n  decnet deploy --config fleet.ini --wait\n  decnet deploy --add --deckies 1 --archetype windows-workstation --json"
    )]
    Deploy(Box<DeployArgs>),
    /// Show the deckies: the master's fleet when there is one, else this host's containers.
    #[command(
        after_help = "Examples:\n  decnet status\n  decnet status --json | jq -r '.deckies[] | select(.state != \"running\") | .name'"
    )]
    Status(StatusArgs),
    /// Remove deckies (through the master when there is one, else from this host).
    #[command(
        after_help = "Examples:\n  decnet teardown --id decky-02 --wait\n  decnet teardown --all --json"
    )]
    Teardown(TeardownArgs),
    /// Run an isolated lab: a LAN, three deckies, probes from an attacker namespace.
    Demo(DemoArgs),
    /// List the honeypot services deckies can run.
    Services(ListArgs),
    /// List the archetypes (ready-made decky personas).
    Archetypes(ListArgs),
    /// List the distros deckies can claim to be.
    Distros(ListArgs),
    /// Set this host up as a master: CA, master certificate, store, first admin API token.
    #[command(
        after_help = "Examples:\n  decnet init\n  decnet init --systemd --data-dir /var/lib/decnet"
    )]
    Init(InitArgs),
    /// Enroll, list and decommission worker hosts (through the master).
    #[command(
        subcommand,
        after_help = "Examples:\n  decnet hosts enroll --name worker-1 --address 10.0.0.5:8765\n  decnet hosts list --json\n  decnet hosts decommission worker-1"
    )]
    Hosts(HostsCommand),
    /// Create, list and revoke operator API tokens (through the master).
    #[command(
        subcommand,
        after_help = "Examples:\n  decnet tokens create --role viewer --json\n  decnet tokens list\n  decnet tokens revoke 3f2c8a4e-0b7e-4a39-9d1e-2f9b7c1a0e55"
    )]
    Tokens(TokensCommand),
    /// Run the master: operator API, swarm endpoint and background loops.
    #[command(
        after_help = "Examples:\n  decnet serve\n  decnet serve --db postgres://decnet@localhost/decnet --advertise https://master.lan:8770\n  DECNET_API_BIND=10.0.0.1:8443 decnet serve --no-local"
    )]
    Serve(ServeArgs),
    /// Give a decky new services (through the master when there is one, else on this host).
    #[command(
        after_help = "Examples:\n  decnet mutate decky-01 --services ssh,ftp\n  decnet mutate decky-01 --json | jq -r '.lifecycle_ids[]'"
    )]
    Mutate(MutateArgs),
    /// Show lifecycle rows (deploy/mutate/teardown attempts) by id, or the newest ones
    /// (through the master).
    #[command(
        after_help = "Examples:\n  decnet lifecycle 3f2c8a4e-0b7e-4a39-9d1e-2f9b7c1a0e55\n  decnet lifecycle --recent --decky decky-01\n  decnet lifecycle $(decnet deploy --deckies 2 --services ssh --json | jq -r '.lifecycle_ids[]')"
    )]
    Lifecycle(LifecycleArgs),
    /// Print the master's bus events (lifecycle, state, mutation); --follow keeps streaming.
    Events(EventsArgs),
    /// Print what the deckies saw of attackers (connections, credentials, commands, requests);
    /// --follow keeps printing new ones.
    Attacks(AttacksArgs),
    /// One line per attacker (source address): first and last seen, events, credentials tried,
    /// deckies, services and usernames.
    Attackers(AttackersArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Examples:\n  decnet completions bash > /etc/bash_completion.d/decnet\n  decnet completions zsh > \"${fpath[1]}/_decnet\"\n  decnet completions fish > ~/.config/fish/completions/decnet.fish"
    )]
    Completions(CompletionsArgs),
    /// Write the man pages (decnet.1, decnet-deploy.1, …) generated from these flags.
    #[command(after_help = "Example:\n  decnet man --out /usr/local/share/man/man1 && mandb")]
    Man(ManArgs),
    /// Back up the master's data dir (CA, keys, tokens) and its SQLite store, while it runs.
    Backup(BackupArgs),
    /// Restore a `decnet backup` into the data dir (empty, or --force).
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: decnet_web::manual::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The directory to write the pages into (created when missing).
    #[arg(long, value_name = "DIR")]
    pub out: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where the backup goes: a new (or empty) directory.
    #[arg(long)]
    pub out: PathBuf,
    /// The master's store (default: decnet.db in the data dir); a PostgreSQL store is not
    /// copied (use pg_dump).
    #[arg(long, env = "DECNET_DB", hide_env_values = true)]
    pub db: Option<String>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup (the directory `decnet backup --out` made).
    #[arg(long)]
    pub from: PathBuf,
    /// Restore into a data dir that is not empty (the backup's files replace its own).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Unihost,
    Swarm,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Unihost => Mode::Unihost,
            ModeArg::Swarm => Mode::Swarm,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DriverArg {
    Macvlan,
    Ipvlan,
    Bridge,
}

impl From<DriverArg> for NetworkDriver {
    fn from(d: DriverArg) -> Self {
        match d {
            DriverArg::Macvlan => NetworkDriver::Macvlan,
            DriverArg::Ipvlan => NetworkDriver::Ipvlan,
            DriverArg::Bridge => NetworkDriver::Bridge,
        }
    }
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Number of deckies to plan (flag path; ignored with --config).
    #[arg(help_heading = "Fleet", long, short = 'n')]
    pub deckies: Option<usize>,
    /// Services for every decky, comma-separated (e.g. ssh,http).
    #[arg(help_heading = "Fleet", long, value_delimiter = ',')]
    pub services: Option<Vec<String>>,
    /// Draw 1-3 clash-free services per decky at random.
    #[arg(help_heading = "Fleet", long)]
    pub randomize_services: bool,
    /// Archetype for every decky (see `decnet archetypes`).
    #[arg(help_heading = "Fleet", long, short = 'a')]
    pub archetype: Option<String>,
    /// Distros to cycle through, comma-separated (see `decnet distros`).
    #[arg(help_heading = "Fleet", long, value_delimiter = ',')]
    pub distro: Option<Vec<String>>,
    /// Draw each decky's distro at random.
    #[arg(help_heading = "Fleet", long)]
    pub randomize_distros: bool,
    /// The parent interface of the deckies' network.
    #[arg(help_heading = "Network", long, short = 'i', env = "DECNET_INTERFACE")]
    pub interface: Option<String>,
    /// The LAN's subnet in CIDR form (default: the interface's).
    #[arg(help_heading = "Network", long)]
    pub subnet: Option<String>,
    /// The LAN's gateway (default: the interface's default route, else the subnet's first host).
    #[arg(help_heading = "Network", long)]
    pub gateway: Option<String>,
    /// This host's address on the LAN (default: the interface's primary IPv4 address).
    #[arg(help_heading = "Network", long)]
    pub host_ip: Option<Ipv4Addr>,
    /// First decky address (flag path only).
    #[arg(help_heading = "Network", long)]
    pub ip_start: Option<Ipv4Addr>,
    /// Docker network driver.
    #[arg(help_heading = "Network", long, value_enum)]
    pub network_driver: Option<DriverArg>,
    /// Alias of --network-driver ipvlan.
    #[arg(help_heading = "Network", long, conflicts_with = "network_driver")]
    pub ipvlan: bool,
    /// unihost: this machine runs the deckies; swarm: worker agents do.
    #[arg(
        help_heading = "Network",
        long,
        short = 'm',
        value_enum,
        default_value = "unihost"
    )]
    pub mode: ModeArg,
    /// The original DECNET's deployment INI.
    #[arg(help_heading = "Fleet", long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Minutes between service mutations (0 = never); beats the INI's intervals when given.
    #[arg(help_heading = "Fleet", long)]
    pub mutate_interval: Option<u32>,
    /// Where the collector writes events.
    #[arg(help_heading = "Fleet", long, env = "DECNET_INGEST_LOG_FILE")]
    pub log_file: Option<String>,
    /// Seed the random choices (services, distros, hostnames) for a reproducible plan.
    #[arg(help_heading = "Fleet", long)]
    pub seed: Option<u64>,
    /// Print the plan without touching Docker or the network.
    #[arg(help_heading = "Output", long)]
    pub dry_run: bool,
    /// Print JSON: with --dry-run the DecnetConfig, else the lifecycle ids and each decky's
    /// outcome (docs/cli-json.md).
    #[arg(help_heading = "Output", long)]
    pub json: bool,
    /// Add to this host's fleet instead of replacing it.
    #[arg(help_heading = "Fleet", long)]
    pub add: bool,
    #[command(flatten)]
    pub docker: DockerArgs,
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub docker: DockerArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct TeardownArgs {
    /// Remove every decky of this host, its network and host link.
    #[arg(long, conflicts_with = "id", required_unless_present = "id")]
    pub all: bool,
    /// Remove one decky.
    #[arg(long)]
    pub id: Option<String>,
    /// Print JSON: the lifecycle ids and each decky's outcome (docs/cli-json.md).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub docker: DockerArgs,
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Leave the lab running and say how to reach it.
    #[arg(long)]
    pub keep: bool,
    /// The decky binary (default: `decnet-decky` next to this executable).
    #[arg(long, env = "DECNET_DECKY_BIN")]
    pub decky_bin: Option<PathBuf>,
    /// The first form: no master and no agent, the deckies deployed in-process (unihost).
    #[arg(long)]
    pub unihost: bool,
    /// The worker agent binary (default: `decnet-agent` next to this executable).
    #[arg(long, env = "DECNET_AGENT_BIN", conflicts_with = "unihost")]
    pub agent_bin: Option<PathBuf>,
}

/// Where `decnet init --systemd` writes its units by default.
pub const DEFAULT_SYSTEMD_DIR: &str = "/etc/systemd/system";
/// The agent's environment file (`EnvironmentFile=` of `decnet-agent.service`).
pub const DEFAULT_AGENT_ENV: &str = "/etc/decnet/agent.env";

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The store: sqlite://<path> (default: decnet.db in the data dir) or postgres://….
    #[arg(long, env = "DECNET_DB", hide_env_values = true)]
    pub db: Option<String>,
    /// Also write hardened systemd units (decnet-master.service, decnet-agent.service,
    /// decnet.target); never runs systemctl.
    #[arg(long)]
    pub systemd: bool,
    /// Where --systemd writes the units.
    #[arg(long, default_value = DEFAULT_SYSTEMD_DIR, requires = "systemd")]
    pub systemd_dir: PathBuf,
    /// The agent's environment file, where --systemd records DECNET_REAPER_PATHS.
    #[arg(long, default_value = DEFAULT_AGENT_ENV, requires = "systemd")]
    pub agent_env: PathBuf,
    /// The master also runs deckies on this host (Docker, CAP_NET_ADMIN in its unit); without
    /// it decnet-master.service runs `serve --no-local` with no capability at all.
    #[arg(long, requires = "systemd")]
    pub local_deckies: bool,
    /// Issue a new admin token even when admin.token exists (the old one is revoked).
    #[arg(long)]
    pub force_token: bool,
}

/// How a client command reaches the master.
#[derive(Clone, Args)]
#[command(next_help_heading = "Master")]
pub struct ClientArgs {
    /// The master's operator API URL (default: from <data-dir>/master.json while `decnet
    /// serve` runs).
    #[arg(long, env = "DECNET_MASTER_URL")]
    pub master: Option<String>,
    /// Operator API token (default: <data-dir>/admin.token).
    #[arg(long, env = "DECNET_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate that verifies an https:// master (default: <data-dir>/ca.crt).
    #[arg(long)]
    pub ca: Option<PathBuf>,
}

impl std::fmt::Debug for ClientArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientArgs")
            .field("master", &self.master)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca", &self.ca)
            .finish()
    }
}

#[derive(Debug, Subcommand)]
pub enum HostsCommand {
    /// Make a one-time enrollment token and print the command to run on the worker.
    Enroll(HostsEnrollArgs),
    /// List the enrolled worker hosts.
    List(ClientListArgs),
    /// Decommission a worker: best-effort self-destruct, revoke its certificate, forget it.
    Decommission(HostsDecommissionArgs),
}

#[derive(Debug, Args)]
pub struct HostsEnrollArgs {
    /// The worker's name (its certificate CN; `decnet-master` is reserved).
    #[arg(long)]
    pub name: String,
    /// HOST:PORT where the master reaches the worker's agent (e.g. 10.0.0.5:8765).
    #[arg(long)]
    pub address: String,
    /// Print JSON ({"token","expires_at","command"}).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ClientListArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct HostsDecommissionArgs {
    /// The enrolled host's name.
    pub name: String,
    /// Print JSON ({"name","uuid","decommissioned":true}).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create an API token (shown once).
    Create(TokensCreateArgs),
    /// List the API tokens (without secrets).
    List(ClientListArgs),
    /// Revoke an API token.
    Revoke(TokensRevokeArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Everything.
    Admin,
    /// Read-only routes.
    Viewer,
}

impl From<RoleArg> for decnet_core::model::Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Admin => decnet_core::model::Role::Admin,
            RoleArg::Viewer => decnet_core::model::Role::Viewer,
        }
    }
}

#[derive(Debug, Args)]
pub struct TokensCreateArgs {
    /// What the token may do.
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// Print JSON ({"id","token","role"}).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct TokensRevokeArgs {
    /// The token's id (see `decnet tokens list`).
    pub id: String,
    /// Print JSON ({"id","revoked":true}).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The store: sqlite://PATH (default: decnet.db in the data dir) or postgres://…
    #[arg(long, env = "DECNET_DB")]
    pub db: Option<String>,
    /// Operator API address: plain HTTP on loopback, HTTPS anywhere else.
    #[arg(long, env = "DECNET_API_BIND", default_value = "127.0.0.1:8000")]
    pub api_bind: std::net::SocketAddr,
    /// Swarm endpoint address (mutual TLS).
    #[arg(long, env = "DECNET_SWARM_BIND", default_value = "0.0.0.0:8770")]
    pub swarm_bind: std::net::SocketAddr,
    /// The swarm URL printed in enrollment commands (default: this host's name and port).
    #[arg(long, env = "DECNET_ADVERTISE")]
    pub advertise: Option<String>,
    /// Most deckies the fleet may hold.
    #[arg(long, env = "DECNET_FLEET_LIMIT", default_value_t = 256)]
    pub fleet_limit: usize,
    /// The agents' heartbeat interval in seconds (hosts go unreachable after 3 missed).
    #[arg(long, env = "DECNET_HEARTBEAT_INTERVAL", default_value_t = 30)]
    pub heartbeat_interval: u64,
    /// Run no deckies on this machine (only drive workers).
    #[arg(long, env = "DECNET_NO_LOCAL")]
    pub no_local: bool,
    /// Seconds a deploy row may go without progress before the sweep fails it.
    #[arg(long, value_name = "SECS", env = "DECNET_DEPLOY_TIMEOUT", default_value_t = 15 * 60,
          value_parser = clap::value_parser!(u64).range(1..=7 * 24 * 3600))]
    pub deploy_timeout: u64,
    /// Seconds a mutate row may go without progress before the sweep fails it.
    #[arg(long, value_name = "SECS", env = "DECNET_MUTATE_TIMEOUT", default_value_t = 10 * 60,
          value_parser = clap::value_parser!(u64).range(1..=7 * 24 * 3600))]
    pub mutate_timeout: u64,
    /// Seconds a teardown row may go without progress before the sweep fails it.
    #[arg(long, value_name = "SECS", env = "DECNET_TEARDOWN_TIMEOUT", default_value_t = 5 * 60,
          value_parser = clap::value_parser!(u64).range(1..=7 * 24 * 3600))]
    pub teardown_timeout: u64,
    /// Seconds a one-time enrollment token stays valid.
    #[arg(long, value_name = "SECS", env = "DECNET_ENROLL_TOKEN_TTL", default_value_t = 15 * 60,
          value_parser = clap::value_parser!(u64).range(1..=7 * 24 * 3600))]
    pub enroll_token_ttl: u64,
    /// Seconds the worker certificates the master issues are valid, at enrollment and at each
    /// renewal (agents renew a third of it before expiry).
    #[arg(long, value_name = "SECS", env = "DECNET_WORKER_CERT_LIFETIME",
          default_value_t = decnet_tls::pki::WORKER_CERT_VALIDITY.as_secs(),
          value_parser = clap::value_parser!(u64).range(60..=decnet_tls::pki::CA_VALIDITY.as_secs()))]
    pub worker_cert_lifetime: u64,
    /// Seconds a renewed worker's previous certificate is still accepted, unless the worker
    /// uses the new one first (it must be shorter than --worker-cert-lifetime).
    #[arg(long, value_name = "SECS", env = "DECNET_RENEWAL_OVERLAP",
          default_value_t = crate::master::state::DEFAULT_RENEWAL_OVERLAP.as_secs(),
          value_parser = clap::value_parser!(u64).range(0..=30 * 86_400))]
    pub renewal_overlap: u64,
    /// Seconds before the master certificate expires that its rollover begins: a successor
    /// is issued, the workers pin it, then it is served (0: a third of its lifetime).
    #[arg(long, value_name = "SECS", env = "DECNET_MASTER_RENEW_BEFORE", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=decnet_tls::pki::CA_VALIDITY.as_secs()))]
    pub master_renew_before: u64,
    /// Days attacker events are kept (0: however old).
    #[arg(long, value_name = "DAYS", env = "DECNET_ATTACK_RETENTION_DAYS", default_value_t = 90,
          value_parser = clap::value_parser!(u64).range(0..=36_500))]
    pub attack_retention_days: u64,
    /// Most attacker events kept, the newest (0: no bound).
    #[arg(
        long,
        value_name = "N",
        env = "DECNET_ATTACK_RETENTION_MAX",
        default_value_t = 10_000_000
    )]
    pub attack_retention_max: u64,
    #[command(flatten, next_help_heading = "Listener limits")]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub docker: DockerArgs,
}

pub use decnet_web::cli::LimitArgs;

/// Following the master's lifecycle rows after a change (`--wait`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Waiting (with a master)")]
pub struct WaitArgs {
    /// With a master: show per-decky progress until every operation is done (exit 1 if any
    /// failed). Without one the work is done before the command returns anyway.
    #[arg(long)]
    pub wait: bool,
    /// Longest --wait, in seconds (exit 1 when exceeded; the operations go on).
    #[arg(long, value_name = "SECS", default_value_t = 1800,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub wait_timeout: u64,
}

#[derive(Debug, Args)]
pub struct MutateArgs {
    /// The decky.
    pub name: String,
    /// Its new services, comma-separated (default: a fresh clash-free draw, as the mutator
    /// would).
    #[arg(long, value_delimiter = ',')]
    pub services: Option<Vec<String>>,
    /// Print JSON: the lifecycle ids and the decky's outcome (docs/cli-json.md).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub docker: DockerArgs,
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Keep printing new events until the master stops (or Ctrl-C).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only events after this id (as printed first on each line).
    #[arg(long, value_name = "ID")]
    pub since: Option<u64>,
    /// One JSON object per line: {"id","topic","body"}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct AttacksArgs {
    /// Keep printing new events (until Ctrl-C).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// One event per line as JSON (the schema of docs/attack-events.md).
    #[arg(long)]
    pub json: bool,
    /// Only events at or after this time (RFC 3339, e.g. 2026-12-03T06:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only this decky's events.
    #[arg(long)]
    pub decky: Option<String>,
    /// Only events from this source address.
    #[arg(long, value_name = "IP")]
    pub src: Option<String>,
    /// Only this service's events (ssh, http …).
    #[arg(long)]
    pub service: Option<String>,
    /// Only events of this kind (connect, auth, command, request, disconnect …).
    #[arg(long)]
    pub kind: Option<String>,
    #[command(flatten)]
    pub docker: DockerArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct AttackersArgs {
    /// Print JSON ({"attackers":[...]}).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub docker: DockerArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct LifecycleArgs {
    /// Lifecycle row ids (UUIDs, as deploy, mutate and teardown print them).
    #[arg(
        required_unless_present = "recent",
        conflicts_with = "recent",
        value_name = "ID"
    )]
    pub ids: Vec<String>,
    /// The newest rows instead (newest first), at most --limit.
    #[arg(long)]
    pub recent: bool,
    /// With --recent: only this decky's rows.
    #[arg(long, requires = "recent", value_name = "NAME")]
    pub decky: Option<String>,
    /// With --recent: at most this many rows.
    #[arg(long, requires = "recent", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Print JSON ({"rows":[...]}).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}
