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
    compile_sandboxed(file, text, None)
}

/// [`compile`], then, for rules from the network, the sandbox's refusals
/// as errors of the text.
pub fn compile_sandboxed(
    file: &str,
    text: &str,
    sandbox: Option<&crate::auth::sandbox::Sandbox>,
) -> Result<CheckedProgram, RulesError> {
    let error = |diagnostics| RulesError {
        file: file.to_string(),
        text: text.to_string(),
        diagnostics,
    };
    let program = weir_dsl::compile(text).map_err(error)?;
    match sandbox.map(|s| s.check(&program)) {
        Some(refused) if !refused.is_empty() => Err(error(refused)),
        _ => Ok(program),
    }
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
