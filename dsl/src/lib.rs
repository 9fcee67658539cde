//! `weir-dsl`: the `.rules` language of Weir.
//!
//! A `.rules` file declares sources, outputs, archives and pipelines. This crate
//! parses the text with a [pest] grammar ([`parser`]), checks names, types,
//! aggregates and windows ([`checker`]), and reports mistakes as [`Diagnostic`]s that
//! point at `file:line:col`. It does no I/O: reading files and running pipelines
//! belong to the engine and the `weir` binary.
//!
//! ```
//! let text = r#"
//! source app = generator(rate: 100) format json
//! pipeline errors {
//!   from app
//!   | where severity >= error
//!   | window tumbling 1m by service { n = count() }
//!   | alert "errors" when n > 10 severity critical
//! }
//! "#;
//! let checked = weir_dsl::compile(text).expect("valid rules");
//! assert_eq!(checked.pipelines.len(), 1);
//! ```

pub mod ast;
pub mod checker;
pub mod connectors;
pub mod diagnostic;
pub mod functions;
pub mod limits;
pub mod parser;
pub mod plan;
pub mod presets;
pub mod reads;
pub mod repartition;
pub mod span;
pub mod sql;
pub mod template;
/// Severity levels (shared with the shipper through `weir-formats`).
pub use weir_formats::severity;
pub mod types;

pub use checker::{check, check_condition, CheckedPipeline, CheckedProgram, CheckedSource};
pub use diagnostic::{render_all, Diagnostic, ErrorKind, LocatedDiagnostic};
pub use parser::{parse, parse_condition};
pub use span::Span;
pub use types::{Schema, Type};

/// Parses and checks a `.rules` text.
pub fn compile(text: &str) -> Result<CheckedProgram, Vec<Diagnostic>> {
    let program = parse(text)?;
    check(&program)
}
