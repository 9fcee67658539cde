//! `weir check FILE...`

use crate::rules;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn run(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let mut failed = 0;
    for path in files {
        let name = path.display().to_string();
        let text = match rules::read(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{name}: error: {e}");
                failed += 1;
                continue;
            }
        };
        match rules::compile(&name, &text) {
            Ok(p) => println!(
                "{name}: ok ({} source{}, {} pipeline{})",
                p.sources.len(),
                if p.sources.len() == 1 { "" } else { "s" },
                p.pipelines.len(),
                if p.pipelines.len() == 1 { "" } else { "s" },
            ),
            Err(e) => {
                eprint!("{}", e.render());
                failed += 1;
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
