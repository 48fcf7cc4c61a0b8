//! `decnet`: the operator CLI and (later) the master daemon. Parses flags, installs logging,
//! wires adapters and runs; everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use decnet_master_bin::{cli::Cli, logging, run};

fn main() -> ExitCode {
    decnet_tls::install_default_provider();
    let cli = Cli::parse();
    logging::init();
    tracing::debug!(version = env!("CARGO_PKG_VERSION"), "decnet starting");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("decnet: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let mut stdout = std::io::stdout().lock();
    match runtime.block_on(run(cli, &mut stdout)) {
        Ok(()) => ExitCode::SUCCESS,
        // `decnet services | head -1`: the reader has what it wanted.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("decnet: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
