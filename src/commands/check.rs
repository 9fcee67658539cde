//! `weir check FILE... [--format json]`

use crate::cli::CheckFormat;
use crate::rules;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use weir_dsl::LocatedDiagnostic;

/// One file's result in `--format json`.
#[derive(Serialize)]
struct FileReport {
    file: String,
    ok: bool,
    /// Why the file could not be read at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    sources: usize,
    pipelines: usize,
    diagnostics: Vec<LocatedDiagnostic>,
}

pub fn run(files: &[PathBuf], format: CheckFormat) -> anyhow::Result<ExitCode> {
    let reports: Vec<FileReport> = files.iter().map(|p| check(p, format)).collect();
    if format == CheckFormat::Json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    Ok(if reports.iter().all(|r| r.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Checks one file; in text format, prints its result as it goes.
fn check(path: &std::path::Path, format: CheckFormat) -> FileReport {
    let text_out = format == CheckFormat::Text;
    let mut report = FileReport {
        file: path.display().to_string(),
        ok: false,
        error: None,
        sources: 0,
        pipelines: 0,
        diagnostics: Vec::new(),
    };
    let name = report.file.clone();
    let text = match rules::read(path) {
        Ok(t) => t,
        Err(e) => {
            if text_out {
                eprintln!("{name}: error: {e}");
            }
            report.error = Some(e.to_string());
            return report;
        }
    };
    match rules::compile(&name, &text) {
        Ok(p) => {
            report.ok = true;
            report.sources = p.sources.len();
            report.pipelines = p.pipelines.len();
            if text_out {
                println!(
                    "{name}: ok ({} source{}, {} pipeline{})",
                    p.sources.len(),
                    if p.sources.len() == 1 { "" } else { "s" },
                    p.pipelines.len(),
                    if p.pipelines.len() == 1 { "" } else { "s" },
                );
            }
        }
        Err(e) => {
            if text_out {
                eprint!("{}", e.render());
            }
            report.diagnostics = e.located();
        }
    }
    report
}
