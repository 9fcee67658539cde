//! `weir silence add|list|expire`: silences on a running `weir serve`, through
//! its HTTP API.

use crate::cli::SilenceAction;
use serde_json::{json, Value};
use std::process::ExitCode;

pub fn run(server: &str, action: SilenceAction) -> anyhow::Result<ExitCode> {
    let base = server.trim_end_matches('/');
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
            let resp = ureq::post(&format!("{base}/api/v1/silences"))
                .config()
                .http_status_as_error(false)
                .build()
                .send_json(&body)
                .map_err(|e| anyhow::anyhow!("cannot reach {base}: {e}"))?;
            let status = resp.status().as_u16();
            let v: Value = resp.into_body().read_json().unwrap_or(Value::Null);
            if status != 201 {
                eprintln!(
                    "error: {}",
                    v["error"]
                        .as_str()
                        .unwrap_or("the server refused the silence")
                );
                return Ok(ExitCode::from(1));
            }
            println!("{}", v["id"].as_str().unwrap_or_default());
            eprintln!(
                "silenced {} until {}",
                matchers.join(", "),
                v["ends_at"].as_str().unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        SilenceAction::List => {
            let v: Value = ureq::get(&format!("{base}/api/v1/silences"))
                .call()
                .map_err(|e| anyhow::anyhow!("cannot reach {base}: {e}"))?
                .into_body()
                .read_json()?;
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
            let resp = ureq::delete(&format!("{base}/api/v1/silences/{id}"))
                .config()
                .http_status_as_error(false)
                .build()
                .call()
                .map_err(|e| anyhow::anyhow!("cannot reach {base}: {e}"))?;
            if resp.status().as_u16() == 204 {
                eprintln!("silence {id} expired");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("error: no silence `{id}`");
                Ok(ExitCode::from(1))
            }
        }
    }
}
