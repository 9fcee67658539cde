//! `weir silence add|list|expire`: silences on a running `weir serve`, through
//! its HTTP API.

use super::client::{error_text, Client, Connection};
use crate::cli::SilenceAction;
use serde_json::{json, Value};
use std::process::ExitCode;

pub fn run(connection: Connection, action: SilenceAction) -> anyhow::Result<ExitCode> {
    let client = Client::new(connection)?;
    match action {
        SilenceAction::Add {
            matchers,
            duration,
            comment,
            author,
        } => {
            let body = json!({
                "matchers": matchers,
                "duration": duration,
                "comment": comment,
                "created_by": author.unwrap_or_else(|| std::env::var("USER").unwrap_or_default()),
            });
            let (status, bytes) =
                client.post_json("/api/v1/silences", &body, "application/json")?;
            if status != 201 {
                eprintln!("error: {}", error_text(status, &bytes));
                return Ok(ExitCode::from(1));
            }
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            println!("{}", v["id"].as_str().unwrap_or_default());
            eprintln!(
                "silenced {} until {}",
                matchers.join(", "),
                v["ends_at"].as_str().unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        SilenceAction::List => {
            let (status, bytes) = client.get("/api/v1/silences")?;
            if status != 200 {
                eprintln!("error: {}", error_text(status, &bytes));
                return Ok(ExitCode::from(1));
            }
            let v: Value = serde_json::from_slice(&bytes)?;
            let list = v["silences"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                eprintln!("no silences");
            }
            for s in list {
                let matchers: Vec<String> = s["matchers"]
                    .as_array()
                    .map(|ms| {
                        ms.iter()
                            .map(|m| {
                                format!(
                                    "{}{}{}",
                                    m["name"].as_str().unwrap_or_default(),
                                    m["op"].as_str().unwrap_or("="),
                                    m["value"].as_str().unwrap_or_default()
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                println!(
                    "{}  {:<8} until {}  {}  {}",
                    s["id"].as_str().unwrap_or_default(),
                    s["status"].as_str().unwrap_or_default(),
                    s["ends_at"].as_str().unwrap_or_default(),
                    matchers.join(","),
                    s["comment"].as_str().unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        SilenceAction::Expire { id } => {
            let (status, bytes) = client.delete(&format!("/api/v1/silences/{id}"))?;
            if status == 204 {
                eprintln!("silence {id} expired");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("error: {}", error_text(status, &bytes));
                Ok(ExitCode::from(1))
            }
        }
    }
}
