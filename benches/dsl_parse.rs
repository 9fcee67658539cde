//! Parsing and checking `.rules` text, and evaluating a filter over a batch,
//! with criterion.
// Benchmark and example code, not a runtime path: a panic stops the run with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// The allocator the `weir` binary runs with (src/main.rs): the figures
/// are those of what ships.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

const DEMO: &str = include_str!("../rules/examples/demo.rules");

fn parse_and_check(c: &mut Criterion) {
    c.bench_function("parse demo.rules", |b| {
        b.iter(|| weir_dsl::parse(black_box(DEMO)))
    });
    c.bench_function("parse+check demo.rules", |b| {
        b.iter(|| weir_dsl::compile(black_box(DEMO)))
    });
}

criterion_group!(benches, parse_and_check);
criterion_main!(benches);
