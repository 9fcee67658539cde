//! The subcommands.

mod account;
mod archive;
mod backtest;
mod check;
mod client;
mod pipeline;
mod query;
mod run;
mod serve;
mod silence;
mod test_rules;

use crate::cli::{ArchiveArgs, Cli, Command};
pub use backtest::{stream_map as backtest_streams, time as backtest_time};
use std::process::ExitCode;

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check { files, format } => check::run(&files, format),
        Command::Run {
            file,
            config,
            data_dir,
            json,
            quiet,
            metrics,
        } => runtime()?.block_on(run::run(
            &file,
            config.as_deref(),
            data_dir,
            run::Display { json, quiet },
            metrics,
        )),
        Command::Query {
            sql,
            format,
            server,
            token,
            ca,
            scope,
            archive:
                ArchiveArgs {
                    archive,
                    config,
                    data_dir,
                },
            start,
            end,
            as_of,
            max_rows,
            timeout,
            repeat,
        } => {
            let target = match server {
                Some(server) => query::Target::Server(client::Connection { server, token, ca }),
                None => query::Target::Archive {
                    url: archive,
                    config,
                    data_dir,
                },
            };
            let req = query::Request {
                sql,
                start,
                end,
                as_of,
                max_rows,
                timeout_s: timeout,
                repeat,
                scope,
            };
            runtime()?.block_on(query::run(target, req, format))
        }
        Command::Archive {
            action,
            config,
            data_dir,
            archive: url,
        } => runtime()?.block_on(archive::run(action, config, data_dir, url)),
        Command::Ship { config, check } => {
            if check {
                return match weir_ship::ShipConfig::load(&config) {
                    Ok(c) => {
                        println!("{}: ok ({} sources)", config.display(), c.sources.len());
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        Ok(ExitCode::from(1))
                    }
                };
            }
            runtime()?.block_on(async {
                match weir_ship::agent::run(&config).await {
                    Ok(()) => Ok(ExitCode::SUCCESS),
                    Err(e) => {
                        eprintln!("error: {e}");
                        Ok(ExitCode::from(1))
                    }
                }
            })
        }
        Command::Test { files } => runtime()?.block_on(test_rules::run(&files)),
        Command::Backtest {
            file,
            from,
            to,
            source,
            archive:
                ArchiveArgs {
                    archive,
                    config,
                    data_dir,
                },
            report,
        } => runtime()?.block_on(backtest::run(backtest::Options {
            file,
            from,
            to,
            sources: source,
            archive,
            config,
            data_dir,
            report,
        })),
        Command::Silence {
            action,
            server,
            token,
            ca,
        } => silence::run(client::Connection { server, token, ca }, action),
        Command::Pipeline {
            action,
            server,
            token,
            ca,
        } => pipeline::run(client::Connection { server, token, ca }, action),
        Command::User { action, store } => account::user(action, store),
        Command::Token { action, store } => account::token(action, store),
        Command::Serve {
            config,
            demo,
            listen,
            data_dir,
            rules,
        } => runtime()?.block_on(serve::serve(
            serve::Options {
                config,
                demo,
                listen,
                data_dir,
                rules,
            },
            cli.log_format,
        )),
    }
}

/// Stack of every runtime thread. Rules and SQL are limited in size before
/// they are planned (see `weir_dsl::limits` and `query::guard`), but planning,
/// checking and evaluating expression trees is recursive: this leaves ample
/// room for the largest accepted input. Only touched pages use memory.
pub const THREAD_STACK: usize = 32 << 20;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(THREAD_STACK)
        .build()?)
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM). The
/// signals are taken over when this is called, not when it is first
/// awaited: a SIGTERM that comes as soon as the port is open (a supervisor's
/// quick restart) stops the process gracefully instead of killing it.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let (term, int) = signals;
            tokio::select! {
                _ = wait(term) => {},
                _ = wait(int) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
