//! Splitting a pipeline at its `repartition by KEYS` stage for a
//! deployment, as Kafka Streams does with its repartition topics.
//!
//! `pipeline P { from S | A | repartition by k | B }` runs as two pipelines
//! joined by a Kafka topic on the source's cluster:
//!
//! - `P-repartition` reads `S`, runs `A`, and writes each row as JSON to the
//!   topic `GROUP-P-repartition`, keyed by the values of `k` (so every row
//!   with the same keys lands in one partition). Each row carries its
//!   source partition, offset and line (`_origin_partition`,
//!   `_origin_offset`, `_origin_raw`).
//! - `P` reads that topic as a `kafka` source `keyed_by` `k` (consumer group
//!   `GROUP-P-repartition`), drops rows it has already seen from the same
//!   source partition (a sender replaying after a crash re-sends them), and
//!   runs `B` — so a window grouping by `k` keeps its state per partition
//!   of the topic, which moves with the partition between processes.
//!
//! Pure: it rewrites a checked program; the connectors create the topic
//! (with as many partitions as the source's topics have) when they start.

use crate::ast::{
    Arg, ArgValue, Connector, FormatSpec, Ident, OutputDecl, Pipeline, SourceDecl, Stage, StageKind,
};
use crate::checker::{CheckedPipeline, CheckedProgram, CheckedSource};
use crate::plan::{Column, RepartitionPlan, RepartitionRole, StagePlan};
use crate::span::Span;
use crate::types::{Schema, OFFSET, ORIGIN_OFFSET, ORIGIN_PARTITION, ORIGIN_RAW, PARTITION, RAW};

/// What the second half's names end with: the sending pipeline, its output,
/// the receiving source, the topic and its consumer group.
pub const SUFFIX: &str = "-repartition";

/// The consumer group of a `kafka` source that does not name one.
pub const DEFAULT_GROUP: &str = "weir";

/// The connector argument (set here, not in rules) that makes a `kafka`
/// output or source create its topic when it is missing, with as many
/// partitions as the largest of the listed topics.
pub const CREATE_LIKE: &str = "create_like";

/// The repartition topic (and consumer group) of pipeline `pipeline` whose
/// source reads as consumer group `group`.
pub fn topic(group: &str, pipeline: &str) -> String {
    format!("{group}-{pipeline}{SUFFIX}")
}

/// Splits every pipeline with a `repartition` stage in two (see the module
/// documentation); others are left as they are.
pub fn split(program: CheckedProgram) -> CheckedProgram {
    let CheckedProgram {
        mut sources,
        mut outputs,
        archives,
        pipelines,
    } = program;
    let mut out = Vec::with_capacity(pipelines.len());
    for cp in pipelines {
        let at = cp
            .plans
            .iter()
            .position(|p| matches!(p, StagePlan::Repartition(_)));
        let source = sources
            .iter()
            .find(|s| s.decl.name.name == cp.pipeline.from.name)
            .cloned();
        match (at, source) {
            (Some(at), Some(source)) => {
                let halves = split_one(cp, at, &source);
                outputs.push(halves.output);
                sources.push(halves.source);
                out.push(halves.sender);
                out.push(halves.receiver);
            }
            _ => out.push(cp),
        }
    }
    CheckedProgram {
        sources,
        outputs,
        archives,
        pipelines: out,
    }
}

/// The two pipelines and the topic's two ends.
struct Halves {
    sender: CheckedPipeline,
    output: OutputDecl,
    source: CheckedSource,
    receiver: CheckedPipeline,
}

fn ident(name: &str, span: Span) -> Ident {
    Ident {
        name: name.to_string(),
        span,
    }
}

fn arg(name: &str, value: ArgValue, span: Span) -> Arg {
    Arg {
        name: ident(name, span),
        value,
        span,
    }
}

fn kafka(args: Vec<Arg>, span: Span) -> Connector {
    Connector {
        kind: ident("kafka", span),
        args,
        span,
    }
}

fn split_one(cp: CheckedPipeline, at: usize, source: &CheckedSource) -> Halves {
    let CheckedPipeline {
        pipeline,
        schemas,
        plans,
    } = cp;
    let name = &pipeline.name.name;
    let stage = &pipeline.stages[at];
    let span = stage.span;
    let keys: Vec<String> = match &plans[at] {
        StagePlan::Repartition(p) => p.keys.iter().map(|c| c.name.clone()).collect(),
        _ => Vec::new(),
    };
    let internal = format!("{name}{SUFFIX}");
    let c = &source.decl.connector;
    let group = c
        .arg("group")
        .and_then(|a| match &a.value {
            ArgValue::Str(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| DEFAULT_GROUP.to_string());
    let topic = topic(&group, name);
    let topics = c
        .arg("topic")
        .map(|a| a.value.clone())
        .unwrap_or(ArgValue::Null);
    let strs = |v: &[String]| ArgValue::List(v.iter().cloned().map(ArgValue::Str).collect());
    // The cluster and client settings are the source's.
    let mut common: Vec<Arg> = ["brokers", "client_id", "options"]
        .iter()
        .filter_map(|n| c.arg(n).cloned())
        .collect();
    common.push(arg("topic", ArgValue::Str(topic.clone()), span));
    common.push(arg(CREATE_LIKE, topics, span));

    // The sender: the stages before, the row's origin renamed, then out.
    let sent = sent_schema(&schemas[at]);
    let mut out_args = common.clone();
    out_args.push(arg("key", strs(&keys), span));
    let output = OutputDecl {
        name: ident(&internal, span),
        connector: kafka(out_args, span),
        span,
    };
    let mut sender_stages = pipeline.stages[..=at].to_vec();
    sender_stages.push(Stage {
        kind: StageKind::To(ident(&internal, span)),
        span,
    });
    let mut sender_schemas = schemas[..=at].to_vec();
    sender_schemas.push(sent.clone());
    sender_schemas.push(sent.clone());
    let mut sender_plans = plans[..at].to_vec();
    sender_plans.push(with_role(&plans[at], RepartitionRole::Send, &schemas[at]));
    sender_plans.push(StagePlan::AsWritten);
    let sender = CheckedPipeline {
        pipeline: Pipeline {
            name: ident(&internal, pipeline.name.span),
            from: pipeline.from.clone(),
            stages: sender_stages,
            span: pipeline.span,
        },
        schemas: sender_schemas,
        plans: sender_plans,
    };

    // The receiver: the topic as a source keyed by the keys.
    let mut received = Schema::core();
    for f in &sent.fields {
        if received.get(&f.name).is_none() {
            received.push(&f.name, f.ty);
        }
    }
    let mut in_args = common;
    in_args.push(arg("group", ArgValue::Str(topic), span));
    in_args.push(arg("keyed_by", strs(&keys), span));
    if let Some(every) = c.arg("commit_every") {
        in_args.push(every.clone());
    }
    let decl = SourceDecl {
        name: ident(&internal, span),
        connector: kafka(in_args, span),
        format: Some(FormatSpec {
            format: Some(crate::ast::Format::Json),
            name: "json".to_string(),
            span,
        }),
        fields: Vec::new(),
        timestamp_format: None,
        timezone: None,
        span: source.decl.span,
    };
    let receiving = CheckedSource {
        decl,
        format: crate::ast::Format::Json,
        schema: received.clone(),
        replayable: true,
        keyed_by: keys,
    };
    let mut receiver_schemas = vec![received.clone()];
    receiver_schemas.extend_from_slice(&schemas[at + 1..]);
    // A window right after the split keeps the rows' source partition (at
    // the end: the window's resolved columns stay where they are), so its
    // event time moves per source partition within each topic partition,
    // as it would have without the topic.
    if matches!(plans.get(at + 1), Some(StagePlan::Window(_))) {
        if let Some(s) = receiver_schemas.get_mut(1) {
            s.push(ORIGIN_PARTITION, crate::types::Type::Int);
        }
    }
    let mut receiver_plans = vec![with_role(&plans[at], RepartitionRole::Receive, &received)];
    receiver_plans.extend(plans[at + 1..].iter().cloned().map(|p| match p {
        StagePlan::Alert(mut a) => {
            a.window_stage -= at;
            StagePlan::Alert(a)
        }
        p => p,
    }));
    let receiver = CheckedPipeline {
        pipeline: Pipeline {
            name: pipeline.name.clone(),
            from: ident(&internal, pipeline.from.span),
            stages: pipeline.stages[at..].to_vec(),
            span: pipeline.span,
        },
        schemas: receiver_schemas,
        plans: receiver_plans,
    };
    Halves {
        sender,
        output,
        source: receiving,
        receiver,
    }
}

/// The rows as they are sent: the source position and line renamed, so
/// that the receiving source's own (the topic's) do not replace them.
fn sent_schema(schema: &Schema) -> Schema {
    let mut s = schema.clone();
    for (from, to) in [
        (PARTITION, ORIGIN_PARTITION),
        (OFFSET, ORIGIN_OFFSET),
        (RAW, ORIGIN_RAW),
    ] {
        s.rename(from, to);
    }
    s
}

/// The stage's plan on one side, its keys resolved against `input`.
fn with_role(plan: &StagePlan, role: RepartitionRole, input: &Schema) -> StagePlan {
    let keys = match plan {
        StagePlan::Repartition(p) => p
            .keys
            .iter()
            .filter_map(|k| {
                input.index_of(&k.name).map(|index| Column {
                    index,
                    name: k.name.clone(),
                    ty: k.ty,
                })
            })
            .collect(),
        _ => Vec::new(),
    };
    StagePlan::Repartition(RepartitionPlan { keys, role })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
source app = kafka(topic: ["logs", "more"], group: "g", brokers: "b:9092", commit_every: 2s) format json fields { user: string }
pipeline errors {
  from app
  | where severity >= warn
  | repartition by service, user
  | window tumbling 1m by service, user { n = count() }
  | alert "noisy" when n > 1
}
pipeline plain {
  from app
  | to stdout
}
"#;

    #[test]
    fn a_repartitioned_pipeline_runs_as_a_sender_and_a_receiver_joined_by_a_topic() {
        let checked = crate::compile(RULES).expect("valid");
        let window = checked.pipelines[0]
            .plans
            .iter()
            .find_map(|p| match p {
                StagePlan::Window(w) => Some(w.clone()),
                _ => None,
            })
            .expect("window");
        assert!(
            window.per_partition,
            "the window after repartition keeps state per partition"
        );
        let split = split(checked);
        let names: Vec<&str> = split
            .pipelines
            .iter()
            .map(|p| p.pipeline.name.name.as_str())
            .collect();
        assert_eq!(names, ["errors-repartition", "errors", "plain"]);

        let sender = &split.pipelines[0];
        let kinds: Vec<&StageKind> = sender.pipeline.stages.iter().map(|s| &s.kind).collect();
        assert!(matches!(
            kinds[..],
            [
                StageKind::Where(_),
                StageKind::Repartition(_),
                StageKind::To(_)
            ]
        ));
        assert_eq!(sender.schemas.len(), 4);
        let sent = sender.schemas.last().expect("schema");
        for f in [ORIGIN_PARTITION, ORIGIN_OFFSET, ORIGIN_RAW, "user"] {
            assert!(sent.get(f).is_some(), "{f} is sent");
        }
        assert!(sent.get(RAW).is_none());

        let output = split
            .outputs
            .iter()
            .find(|o| o.name.name == "errors-repartition")
            .expect("output");
        let arg = |c: &Connector, n: &str| c.arg(n).map(|a| a.value.clone());
        assert_eq!(
            arg(&output.connector, "topic"),
            Some(ArgValue::Str("g-errors-repartition".into()))
        );
        assert_eq!(
            arg(&output.connector, "brokers"),
            Some(ArgValue::Str("b:9092".into()))
        );
        assert_eq!(
            arg(&output.connector, "key").map(|v| v.strings()),
            Some(vec!["service".to_string(), "user".to_string()])
        );
        assert_eq!(
            arg(&output.connector, CREATE_LIKE).map(|v| v.strings()),
            Some(vec!["logs".to_string(), "more".to_string()])
        );

        let source = split
            .source("errors-repartition")
            .expect("receiving source");
        assert_eq!(source.keyed_by, ["service", "user"]);
        assert_eq!(
            arg(&source.decl.connector, "group"),
            Some(ArgValue::Str("g-errors-repartition".into()))
        );
        assert_eq!(
            arg(&source.decl.connector, "commit_every"),
            Some(ArgValue::Duration(2000))
        );

        let receiver = &split.pipelines[1];
        assert_eq!(receiver.pipeline.from.name, "errors-repartition");
        assert_eq!(receiver.schemas[0], source.schema);
        assert_eq!(receiver.pipeline.stages.len(), receiver.plans.len());
        assert_eq!(receiver.schemas.len(), receiver.plans.len() + 1);
        // The window after the split reads the rows' source partition.
        assert_eq!(
            receiver.schemas[1].index_of(ORIGIN_PARTITION),
            Some(receiver.schemas[1].fields.len() - 1)
        );
        match (&receiver.plans[0], &receiver.plans[2]) {
            (StagePlan::Repartition(r), StagePlan::Alert(a)) => {
                assert_eq!(r.role, RepartitionRole::Receive);
                assert_eq!(a.window_stage, 1, "the alert still reads the window");
            }
            other => panic!("unexpected plans {other:?}"),
        }
    }

    #[test]
    fn repartition_needs_a_named_kafka_topic_and_comes_before_the_window_once() {
        let bad = |rules: &str| -> String {
            crate::compile(rules)
                .err()
                .map(|d| d[0].message.clone())
                .unwrap_or_default()
        };
        assert!(bad("source s = file(path: \"x\") format json\npipeline p { from s | repartition by service | to stdout }").contains("needs a kafka source"));
        assert!(bad("source s = kafka(topic: \"^l.*\") format json\npipeline p { from s | repartition by service | to stdout }").contains("not a pattern"));
        assert!(bad("source s = kafka(topic: \"l\") format json\npipeline p { from s | window tumbling 1m by service { n = count() } | repartition by service }").contains("before the window"));
        assert!(bad("source s = kafka(topic: \"l\") format json\npipeline p { from s | repartition by service | repartition by host | to stdout }").contains("only once"));
        assert!(bad("source s = kafka(topic: \"l\") format json\npipeline p { from s | repartition by nope | to stdout }").contains("unknown field"));
    }
}
