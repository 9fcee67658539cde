//! The connector kinds of this build, by the names the rules use (as Arroyo's
//! connector registry): each kind is one entry pointing at the constructor
//! next to its implementation, which parses its own arguments into typed
//! settings. The argument specs the checker validates against are
//! `weir_dsl::connectors::{SOURCES, OUTPUTS}`; a test checks both lists name
//! the same kinds.

use crate::kafka::{KafkaOutput, KafkaSource};
use crate::sinks::json_lines::JsonLinesSink;
use crate::sources::file::{FileSource, StdinSource};
use crate::sources::generator::GeneratorSource;
use crate::sources::http::HttpSource;
use crate::LocalFactory;
use std::sync::Arc;
use weir_dsl::ast::OutputDecl;
use weir_dsl::CheckedSource;
use weir_engine::{Result, Sink, Source};

/// A source kind and its constructor.
pub struct SourceKind {
    pub name: &'static str,
    pub build: fn(&LocalFactory, &CheckedSource) -> Result<Box<dyn Source>>,
}

/// An output kind and its constructor.
pub struct OutputKind {
    pub name: &'static str,
    pub build: fn(&LocalFactory, &OutputDecl) -> Result<Arc<dyn Sink>>,
}

pub const SOURCES: &[SourceKind] = &[
    SourceKind {
        name: "generator",
        build: GeneratorSource::from_decl,
    },
    SourceKind {
        name: "file",
        build: FileSource::from_decl,
    },
    SourceKind {
        name: "stdin",
        build: StdinSource::from_decl,
    },
    SourceKind {
        name: "http",
        build: HttpSource::from_decl,
    },
    SourceKind {
        name: "kafka",
        build: KafkaSource::from_decl,
    },
];

pub const OUTPUTS: &[OutputKind] = &[
    OutputKind {
        name: "stdout",
        build: JsonLinesSink::stdout_from_decl,
    },
    OutputKind {
        name: "file",
        build: JsonLinesSink::file_from_decl,
    },
    OutputKind {
        name: "kafka",
        build: KafkaOutput::from_decl,
    },
];

pub fn source(kind: &str) -> Option<&'static SourceKind> {
    SOURCES.iter().find(|k| k.name == kind)
}

pub fn output(kind: &str) -> Option<&'static OutputKind> {
    OUTPUTS.iter().find(|k| k.name == kind)
}

/// The kinds, for "available in this build" hints.
pub fn names<T>(kinds: &[T], name: impl Fn(&T) -> &'static str) -> String {
    kinds.iter().map(name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_dsl::connectors as spec;

    #[test]
    fn every_spec_has_one_implementation_and_back() {
        let specs = |t: &[spec::ConnectorSpec]| -> Vec<&str> { t.iter().map(|s| s.kind).collect() };
        let mut want = specs(spec::SOURCES);
        let mut have: Vec<&str> = SOURCES.iter().map(|k| k.name).collect();
        want.sort_unstable();
        have.sort_unstable();
        assert_eq!(want, have, "source kinds");
        let mut want = specs(spec::OUTPUTS);
        want.extend(spec::BUILTIN_OUTPUTS);
        want.sort_unstable();
        want.dedup();
        let mut have: Vec<&str> = OUTPUTS.iter().map(|k| k.name).collect();
        have.sort_unstable();
        assert_eq!(want, have, "output kinds");
    }
}
