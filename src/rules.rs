//! Reading and compiling `.rules` text, with diagnostics rendered for people
//! (`file:line:col`) or for the API (JSON).

use std::path::Path;
use weir_dsl::{render_all, CheckedProgram, LocatedDiagnostic};
use weir_engine::EngineError;

/// Rules that failed to compile, with everything needed to show why.
pub struct RulesError {
    pub file: String,
    pub text: String,
    pub diagnostics: Vec<weir_dsl::Diagnostic>,
}

impl RulesError {
    pub fn render(&self) -> String {
        render_all(&self.diagnostics, &self.file, &self.text)
    }

    pub fn located(&self) -> Vec<LocatedDiagnostic> {
        self.diagnostics
            .iter()
            .map(|d| d.located(&self.text))
            .collect()
    }
}

pub fn compile(file: &str, text: &str) -> Result<CheckedProgram, RulesError> {
    weir_dsl::compile(text).map_err(|diagnostics| RulesError {
        file: file.to_string(),
        text: text.to_string(),
        diagnostics,
    })
}

pub fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
}

/// An engine error about the rules (a missing lookup table...) rendered like a
/// checker error when it has a place in the text.
pub fn engine_error(file: &str, text: &str, e: &EngineError) -> String {
    match e.to_diagnostic() {
        Some(d) => d.render(file, text),
        None => format!("{file}: error: {e}\n"),
    }
}
