//! `weir user` and `weir token`: the identity store of a data folder,
//! changed in place (a running server sees the change at once).

use crate::auth::store::NewToken;
use crate::auth::{AuthStore, Scope};
use crate::cli::{StoreArgs, TokenAction, UserAction};
use crate::config::Config;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

fn open(args: StoreArgs) -> anyhow::Result<AuthStore> {
    let cfg = Config::load_or_default(args.config.as_deref(), args.data_dir)?;
    Ok(AuthStore::open(&cfg.data_dir))
}

fn scope(text: Option<&str>) -> anyhow::Result<Scope> {
    Scope::parse(text.unwrap_or("")).map_err(|e| anyhow::anyhow!("--scope: {e}"))
}

/// A password from standard input: asked for without echo on a terminal,
/// else the first line.
fn read_password(prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let echo_off = tty
        && std::process::Command::new("stty")
            .arg("-echo")
            .stdin(std::process::Stdio::inherit())
            .status()
            .is_ok_and(|s| s.success());
    if tty {
        eprint!("{prompt}: ");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if echo_off {
        let _ = std::process::Command::new("stty")
            .arg("echo")
            .stdin(std::process::Stdio::inherit())
            .status();
        eprintln!();
    }
    read?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        anyhow::bail!("no password given (type it, or pipe it to standard input)");
    }
    Ok(password)
}

pub fn user(action: UserAction, args: StoreArgs) -> anyhow::Result<ExitCode> {
    let store = open(args)?;
    match action {
        UserAction::Add {
            name,
            role,
            scope: s,
        } => {
            let s = scope(s.as_deref())?;
            let password = read_password(&format!("password for {name}"))?;
            store.add_user(&name, &password, role, s)?;
            eprintln!("user {name} added ({role})");
        }
        UserAction::List => {
            for u in store.users()? {
                let scope = if u.scope.is_everything() {
                    "everything".to_string()
                } else {
                    u.scope.to_string()
                };
                println!("{}\t{}\t{}\t{}", u.name, u.role, scope, u.created_at);
            }
        }
        UserAction::Remove { name } => {
            store.remove_user(&name)?;
            eprintln!("user {name} removed, with the tokens it created");
        }
        UserAction::Passwd { name } => {
            let password = read_password(&format!("new password for {name}"))?;
            store.set_password(&name, &password)?;
            eprintln!("password of {name} changed");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn token(action: TokenAction, args: StoreArgs) -> anyhow::Result<ExitCode> {
    let store = open(args)?;
    match action {
        TokenAction::Create {
            name,
            role,
            scope: s,
            expires_in,
        } => {
            let (token, info) = store.create_token(NewToken {
                name,
                role,
                scope: scope(s.as_deref())?,
                ttl: expires_in,
                created_by: std::env::var("USER").unwrap_or_else(|_| "cli".into()),
            })?;
            println!("{token}");
            eprintln!(
                "token {} ({}, id {}) created{}; it is shown this once",
                info.name,
                info.role,
                info.id,
                info.expires_at
                    .map(|t| format!(", expires {t}"))
                    .unwrap_or_default()
            );
        }
        TokenAction::List => {
            for t in store.tokens()? {
                let state = if t.expired { "expired" } else { "valid" };
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    t.id,
                    t.name,
                    t.role,
                    if t.scope.is_everything() {
                        "everything".to_string()
                    } else {
                        t.scope.to_string()
                    },
                    t.expires_at.as_deref().unwrap_or("never"),
                    state
                );
            }
        }
        TokenAction::Revoke { id } => {
            store.revoke_token(&id)?;
            eprintln!("token {id} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}
