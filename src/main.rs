//! `weir`: the command-line entry point. See `weir --help`.

mod api;
mod auth;
mod backtest;
mod cli;
mod commands;
mod config;
mod engine_host;
mod query;
mod rules;
mod shadow;
mod simulated;

use clap::Parser;
use std::process::ExitCode;

/// mimalloc: the shipper and the engine allocate many small, short-lived
/// values (events, JSON maps); glibc's allocator was 40% of `weir ship`'s time.
/// Built without asking for transparent huge pages (`no_thp`): memory it
/// gives back and takes again came back as 2 MiB pages the kernel zeroes
/// whole, which was most of a query's system time and made windows over a
/// million keys 35 % slower (docs/operations.md). Where THP is `always`,
/// `MIMALLOC_ALLOW_THP=0` turns them off for the process.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Colour only on a terminal, and never when `NO_COLOR` is set
/// (<https://no-color.org>).
fn colour(stream: &impl std::io::IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG").unwrap_or_else(|_| {
        // The Delta kernel logs every snapshot it builds at info, and
        // delta-rs every concurrent commit it checks at warn or error:
        // Weir reports what matters of those itself (a conflict re-checked,
        // a commit that failed).
        let level = if cli.verbose { "debug" } else { "info" };
        tracing_subscriber::EnvFilter::new(format!(
            "{level},buoyant_kernel=warn,deltalake_core=warn,deltalake_core::kernel::transaction=off"
        ))
    });
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        cli::LogFormat::Json => logs.json().flatten_event(true).init(),
        cli::LogFormat::Text => logs.with_ansi(colour(&std::io::stderr())).init(),
    }
    // On a thread with the runtime's large stack: `block_on` runs the
    // command's own future (a direct `weir query`, `weir check`) here.
    let work = std::thread::Builder::new()
        .name("weir-main".into())
        .stack_size(commands::THREAD_STACK)
        .spawn(move || commands::dispatch(cli));
    match work.map(|t| t.join()) {
        Ok(Ok(Ok(code))) => code,
        Ok(Ok(Err(e))) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Ok(Err(_)) => ExitCode::from(101),
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            ExitCode::from(2)
        }
    }
}
