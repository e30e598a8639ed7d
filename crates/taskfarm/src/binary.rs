//! What taskfarm's binaries (the role binary, the operator, the lab) share around their own
//! work: parsing the command line, one async runtime, and one clear error line instead of a
//! backtrace.

use std::future::Future;
use std::process::ExitCode;

/// Parses the command line. On `Err`, clap has printed help or version (exit 0) or the usage
/// error (exit 2) and the binary returns that code.
pub fn parse<P: clap::Parser>() -> Result<P, ExitCode> {
    P::try_parse().map_err(|e| {
        let _ = e.print();
        ExitCode::from(e.exit_code() as u8)
    })
}

/// Which runtime a binary runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// The roles: I/O-bound and light; one thread avoids cross-thread wake-ups (most of a
    /// master's CPU was context switching on a multi-thread runtime; docs/BENCHMARKS.md).
    One,
    /// The operator and the lab, which block in places.
    Many,
}

/// Runs `main` to completion and turns its error into one line on stderr: the chain of
/// contexts says what failed and why.
pub fn run<F>(threads: Threads, main: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<ExitCode>>,
{
    let mut builder = match threads {
        Threads::One => tokio::runtime::Builder::new_current_thread(),
        Threads::Many => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(main) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
