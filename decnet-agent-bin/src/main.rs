//! `decnet-agent`: the worker agent. This build only reports its version; `serve` and `enroll`
//! arrive with the worker-agent issue.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("--version") | Some("-V") => {
            println!("decnet-agent {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        other => {
            eprintln!(
                "decnet-agent {}: {} is not available in this build (serve and enroll are not implemented yet)",
                env!("CARGO_PKG_VERSION"),
                other.unwrap_or("no command")
            );
            ExitCode::from(2)
        }
    }
}
