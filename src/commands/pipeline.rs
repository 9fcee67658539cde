//! `weir pipeline deploy|list|delete|shadow|promote|discard`: pipelines on a
//! running `weir serve`, through its HTTP API, and shadow versions of them
//! (see docs/tuning.md).

use super::client::{error_text, Client, Connection};
use crate::cli::PipelineAction;
use serde_json::Value;
use std::process::ExitCode;

fn url_part(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The body as JSON when the status is `want`; otherwise prints the
/// server's error and returns `None`.
fn expect(status: u16, want: u16, bytes: &[u8]) -> Option<Value> {
    if status != want {
        eprintln!("error: {}", error_text(status, bytes));
        return None;
    }
    Some(serde_json::from_slice(bytes).unwrap_or(Value::Null))
}

pub fn run(connection: Connection, action: PipelineAction) -> anyhow::Result<ExitCode> {
    let client = Client::new(connection)?;
    let failed = Ok(ExitCode::from(1));
    match action {
        PipelineAction::Deploy { file, shadow_of } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut path = format!("/api/v1/pipelines?name={}", url_part(&name));
            if let Some(live) = &shadow_of {
                path.push_str(&format!("&shadow_of={}", url_part(live)));
            }
            let (status, bytes) = client.post_rules(&path, &text)?;
            let Some(v) = expect(status, 201, &bytes) else {
                return failed;
            };
            match shadow_of {
                Some(live) => eprintln!(
                    "shadow of `{live}` running; compare with `weir pipeline shadow {live}`"
                ),
                None => {
                    for p in v["pipelines"].as_array().cloned().unwrap_or_default() {
                        println!("{}", p.as_str().unwrap_or_default());
                    }
                }
            }
        }
        PipelineAction::List => {
            let (status, bytes) = client.get("/api/v1/pipelines")?;
            let Some(v) = expect(status, 200, &bytes) else {
                return failed;
            };
            for p in v["pipelines"].as_array().cloned().unwrap_or_default() {
                let state = match (p["running"].as_bool(), p["error"].as_str()) {
                    (_, Some(e)) => format!("failed: {e}"),
                    (Some(true), _) => "running".into(),
                    _ => "ended".into(),
                };
                println!(
                    "{}\tfrom {}\t{}\t{state}",
                    p["name"].as_str().unwrap_or_default(),
                    p["source"].as_str().unwrap_or_default(),
                    p["file"].as_str().unwrap_or_default()
                );
            }
        }
        PipelineAction::Delete { name } => {
            let (status, bytes) =
                client.delete(&format!("/api/v1/pipelines/{}", url_part(&name)))?;
            if expect(status, 204, &bytes).is_none() {
                return failed;
            }
            eprintln!("stopped `{name}`");
        }
        PipelineAction::Shadow { name } => {
            let (status, bytes) =
                client.get(&format!("/api/v1/pipelines/{}/shadow", url_part(&name)))?;
            let Some(v) = expect(status, 200, &bytes) else {
                return failed;
            };
            println!(
                "shadow of `{name}` since {}{}, {} events skipped to keep up",
                v["since"].as_str().unwrap_or_default(),
                if v["running"] == true { "" } else { " (ended)" },
                v["skipped_events"]
            );
            let alerts = &v["alerts"];
            for (key, what) in [
                ("only_shadow", "only the shadow fired"),
                ("only_live", "only the live pipeline fired"),
                ("both", "both fired"),
            ] {
                let list = alerts[key].as_array().cloned().unwrap_or_default();
                println!("{what}: {}", list.len());
                for a in list {
                    let when = match key {
                        "both" => format!(
                            "live {}, shadow {}",
                            a["live_first_firing"].as_str().unwrap_or_default(),
                            a["shadow_first_firing"].as_str().unwrap_or_default()
                        ),
                        _ => a["first_firing"].as_str().unwrap_or_default().to_string(),
                    };
                    println!(
                        "  {} {{{}}} first at {when}",
                        a["rule"].as_str().unwrap_or_default(),
                        a["labels"].as_str().unwrap_or_default()
                    );
                }
            }
        }
        PipelineAction::Promote { name } => {
            let (status, bytes) = client.post_empty(&format!(
                "/api/v1/pipelines/{}/shadow/promote",
                url_part(&name)
            ))?;
            if expect(status, 200, &bytes).is_none() {
                return failed;
            }
            eprintln!("the shadow of `{name}` is live");
        }
        PipelineAction::Discard { name } => {
            let (status, bytes) =
                client.delete(&format!("/api/v1/pipelines/{}/shadow", url_part(&name)))?;
            if expect(status, 204, &bytes).is_none() {
                return failed;
            }
            eprintln!("discarded the shadow of `{name}`");
        }
    }
    Ok(ExitCode::SUCCESS)
}
