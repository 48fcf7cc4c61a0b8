//! `decnet-decky`: parse arguments, install signal handlers, run a mode.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use decnet_decky::args::{self, CloakArgs, Command, ServeArgs};
use decnet_decky::config::Env;
use decnet_decky::listen::{self, Limits, Server, Shutdown};
use decnet_decky::log::StdoutSink;
use decnet_decky::{base, service_ctx, SetupError};
use signal_hook::iterator::Signals;

/// How long `serve` waits for open connections after SIGTERM.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    let argv: Result<Vec<String>, _> = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect();
    let Ok(argv) = argv else {
        eprintln!("decnet-decky: arguments must be UTF-8");
        return ExitCode::from(2);
    };
    let command = match args::parse(argv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("decnet-decky: {e}\n\n{}", args::USAGE);
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Version => {
            println!("decnet-decky {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Help => {
            println!("{}", args::USAGE);
            ExitCode::SUCCESS
        }
        Command::Base => run_base(),
        Command::Serve(a) => run_serve(a),
        Command::Cloak(a) => run_cloak(a),
    }
}

/// PID 1 ignores SIGTERM unless a handler is installed: install it first.
fn signals() -> Option<Signals> {
    match Signals::new(base::SIGNALS) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("decnet-decky: cannot install signal handlers: {e}");
            None
        }
    }
}

fn run_base() -> ExitCode {
    let Some(mut signals) = signals() else {
        return ExitCode::FAILURE;
    };
    // A non-Linux persona's base also runs the OS-fingerprint cloak, as a child it restarts.
    let mut cloak = decnet_decky::cloak::Supervisor::from_env(|k| std::env::var(k).ok());
    if let Some(c) = &mut cloak {
        c.start();
    }
    base::run(signals.forever(), || {
        if let Some(c) = &mut cloak {
            c.check();
        }
        base::reap_zombies();
    });
    if let Some(c) = &mut cloak {
        c.stop();
    }
    ExitCode::SUCCESS
}

fn run_serve(args: ServeArgs) -> ExitCode {
    let Some(mut signals) = signals() else {
        return ExitCode::FAILURE;
    };
    let ctx = match service_ctx(&args, &Env::from_process()) {
        Ok(c) => c,
        Err(e @ (SetupError::Config(_) | SetupError::Os(_))) => {
            eprintln!("decnet-decky: serve {}: {e}", args.slug);
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("decnet-decky: serve {}: {e}", args.slug);
            return ExitCode::FAILURE;
        }
    };
    let sockets = match listen::bind(args.bind, &args.ports) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("decnet-decky: serve {}: {e}", args.slug);
            return ExitCode::FAILURE;
        }
    };
    let defaults = Limits::for_service(ctx.service);
    let limits = Limits {
        io_timeout: args.timeout.unwrap_or(defaults.io_timeout),
        max_conns: args.max_conns,
        ..defaults
    };
    let server = match Server::start(
        sockets,
        Arc::new(ctx),
        Arc::new(StdoutSink),
        limits,
        Shutdown::new(),
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "decnet-decky: serve {}: cannot start listeners: {e}",
                args.slug
            );
            return ExitCode::FAILURE;
        }
    };
    let ports: Vec<String> = args.ports.iter().map(ToString::to_string).collect();
    eprintln!(
        "decnet-decky: serving {} on {} ports {}",
        args.slug,
        args.bind,
        ports.join(",")
    );
    base::run(signals.forever(), || {
        base::reap_zombies();
    });
    server.drain(DRAIN_GRACE);
    ExitCode::SUCCESS
}

fn run_cloak(args: CloakArgs) -> ExitCode {
    let Some(mut signals) = signals() else {
        return ExitCode::FAILURE;
    };
    let line = std::env::var("DECNET_OS_PROFILE").unwrap_or_default();
    let profile = match decnet_osfp::encode::decode(&line) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("decnet-decky: cloak: DECNET_OS_PROFILE: {e}");
            return ExitCode::from(2);
        }
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            base::run(signals.forever(), base::reap_zombies_quietly);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }
    eprintln!(
        "decnet-decky: cloak as {:?} on queue {}",
        profile.reference, args.queue
    );
    let seed = u64::from(std::process::id()) ^ 0x9e37_79b9_7f4a_7c15;
    match decnet_decky::cloak::run(profile, &args.ports, args.queue, seed, &stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("decnet-decky: cloak: {e}");
            ExitCode::FAILURE
        }
    }
}
