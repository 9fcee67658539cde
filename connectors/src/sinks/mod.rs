//! Sinks: where results, archives and dead letters go.

pub mod archive;
pub mod archive_file;
pub mod archive_raw;
pub mod dead_letter;
pub mod json_lines;
pub mod text_index;
