//! Checking a pipeline's stages in order: the schema each stage sees and
//! hands on, and what the engine needs resolved ([`crate::plan`]).

use super::*;

impl Checker {
    pub(super) fn pipeline(
        &mut self,
        p: &Pipeline,
        source: &CheckedSource,
        outputs: &[&str],
    ) -> Option<CheckedPipeline> {
        let mut schema = source.schema.clone();
        // The fields each event's partition is decided by: the source's
        // `keyed_by`, or after `repartition by`, its keys.
        let mut keyed_by = source.keyed_by.clone();
        let mut repartitioned = false;
        let errors_before = self.diags.len();
        let mut schemas = Vec::with_capacity(p.stages.len() + 1);
        let mut stages = Vec::with_capacity(p.stages.len());
        let mut plans = Vec::with_capacity(p.stages.len());
        let mut windowed = false;
        // The last window: its stage index and plan, for the alerts after it.
        let mut window_plan: Option<(usize, WindowPlan)> = None;
        // Whether a stage changed a field the source is keyed by (the
        // window's keys may then span partitions).
        let mut rekeyed = false;
        fn touches(keyed_by: &[String], names: &[&str]) -> bool {
            names.iter().any(|n| keyed_by.iter().any(|k| k == n))
        }
        for (i, stage) in p.stages.iter().enumerate() {
            schemas.push(schema.clone());
            let mut plan = StagePlan::AsWritten;
            let kind = match &stage.kind {
                StageKind::Where(e) => {
                    let (e, t) = self.expr(e, &schema, Ctx::Row);
                    self.expect_bool(&e, t, "`where`");
                    StageKind::Where(e)
                }
                StageKind::Set(assigns) => {
                    let mut out = Vec::new();
                    for a in assigns {
                        let (v, t) = self.expr(&a.value, &schema, Ctx::Row);
                        if t == Type::List {
                            self.push(list_misuse(v.span));
                        }
                        if a.name.name == TIMESTAMP && !matches!(t, Type::Timestamp | Type::Null) {
                            self.push(Diagnostic::new(
                                ErrorKind::TypeMismatch,
                                a.value.span,
                                format!("`timestamp` must stay a timestamp, this is {t}"),
                            ));
                        }
                        rekeyed |= touches(&keyed_by, &[a.name.name.as_str()]);
                        schema.push(&a.name.name, if t == Type::Null { Type::String } else { t });
                        out.push(Assignment {
                            name: a.name.clone(),
                            value: v,
                        });
                    }
                    StageKind::Set(out)
                }
                StageKind::Rename(pairs) => {
                    for (from, to) in pairs {
                        rekeyed |= touches(&keyed_by, &[from.name.as_str(), to.name.as_str()]);
                        if schema.get(&from.name).is_none() {
                            self.unknown_field(&from.name, from.span, &schema);
                        } else {
                            schema.rename(&from.name, &to.name);
                        }
                    }
                    stage.kind.clone()
                }
                StageKind::Drop(names) => {
                    rekeyed |= touches(
                        &keyed_by,
                        &names.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(),
                    );
                    for n in names {
                        if !schema.remove(&n.name) {
                            self.unknown_field(&n.name, n.span, &schema);
                        }
                    }
                    stage.kind.clone()
                }
                StageKind::Parse {
                    field,
                    format,
                    fields,
                } => {
                    if let Some(p) = self.parse_stage(field, format, fields, &mut schema) {
                        rekeyed |= touches(
                            &keyed_by,
                            &p.fields.iter().map(String::as_str).collect::<Vec<_>>(),
                        );
                        plan = StagePlan::Parse(p);
                    }
                    stage.kind.clone()
                }
                StageKind::Geoip { field, prefix, .. } => {
                    match schema.get(&field.name) {
                        None => self.unknown_field(&field.name, field.span, &schema),
                        Some(Type::Ip | Type::String) => {}
                        Some(t) => self.push(Diagnostic::new(
                            ErrorKind::TypeMismatch,
                            field.span,
                            format!("geoip needs an ip or string field, `{}` is {t}", field.name),
                        )),
                    }
                    let prefix = prefix.as_ref().map(|p| p.name.as_str()).unwrap_or("geo");
                    for (suffix, t) in GEOIP_FIELDS {
                        let name = format!("{prefix}_{suffix}");
                        rekeyed |= touches(&keyed_by, &[name.as_str()]);
                        schema.push(&name, t);
                    }
                    stage.kind.clone()
                }
                StageKind::Window(w) => {
                    if windowed {
                        self.push(
                            Diagnostic::new(
                                ErrorKind::InvalidWindow,
                                stage.span,
                                "a pipeline can have only one window",
                            )
                            .with_hint(
                                "window results can feed another pipeline through an output",
                            ),
                        );
                    }
                    windowed = true;
                    let samples = evidence::samples_wanted(&p.stages[i + 1..]);
                    let (w, out, wp) = self.window(w, stage.span, &schema, samples);
                    schema = out;
                    if let Some(mut wp) = wp {
                        wp.per_partition = !keyed_by.is_empty()
                            && !rekeyed
                            && keyed_by
                                .iter()
                                .all(|k| wp.group_by.iter().any(|c| &c.name == k));
                        if wp.per_partition {
                            // Each row says which partition its key is
                            // of: alert state moves with it.
                            schema.push(crate::types::PARTITION, Type::Int);
                        }
                        plan = StagePlan::Window(wp.clone());
                        window_plan = Some((i, wp));
                    }
                    StageKind::Window(w)
                }
                StageKind::Alert(a) => {
                    if !windowed {
                        self.push(
                            Diagnostic::new(
                                ErrorKind::AlertWithoutWindow,
                                stage.span,
                                "an alert needs a window before it",
                            )
                            .with_hint("alerts evaluate window results, e.g. `| window tumbling 1m { errors = count() } | alert \"x\" when errors > 10`"),
                        );
                    }
                    let (cond, t) = self.expr(&a.condition, &schema, Ctx::Row);
                    self.expect_bool(&cond, t, "an alert condition");
                    self.check_evidence(a);
                    if let Some(sev) = &a.severity {
                        if severity::rank(&sev.name).is_none() {
                            self.push(unknown_severity(&sev.name, sev.span));
                        }
                    }
                    for (key, text) in &a.annotations {
                        for (_, name) in crate::template::placeholders(text) {
                            if schema.get(name).is_none() {
                                let names: Vec<&str> =
                                    schema.fields.iter().map(|f| f.name.as_str()).collect();
                                self.push(
                                    Diagnostic::new(
                                        ErrorKind::UnknownField,
                                        key.span,
                                        format!("annotation `{}` uses `{{{{{name}}}}}`, which is not a field of the window", key.name),
                                    )
                                    .with_suggestion(name, names.iter().copied())
                                    .or_hint(&format!("a template can use the window's fields: {}", names.join(", "))),
                                );
                            }
                        }
                    }
                    for d in [&a.for_duration, &a.resolve_after].into_iter().flatten() {
                        if d.millis == 0 {
                            self.push(
                                Diagnostic::new(
                                    ErrorKind::InvalidWindow,
                                    d.span,
                                    "the duration must be above zero",
                                )
                                .with_hint("leave `for` out to fire on the first matching window"),
                            );
                        }
                    }
                    if let Some((window_stage, wp)) = &window_plan {
                        let us = |d: &Option<DurationLit>| {
                            d.as_ref().map(|d| (d.millis as i64).saturating_mul(1000))
                        };
                        plan = StagePlan::Alert(AlertPlan {
                            severity: a
                                .severity
                                .as_ref()
                                .map(|s| s.name.to_lowercase())
                                .unwrap_or_else(|| "warning".to_string()),
                            window_stage: *window_stage,
                            group_fields: wp.group_by.iter().map(|c| c.name.clone()).collect(),
                            for_us: us(&a.for_duration).unwrap_or(0),
                            resolve_after_us: us(&a.resolve_after).unwrap_or(wp.assigner.step_us()),
                            evidence: evidence::plan(
                                evidence::samples_of(a),
                                &p.from.name,
                                &stages[..*window_stage],
                                &plans[..*window_stage],
                                wp,
                            ),
                        });
                    }
                    StageKind::Alert(AlertSpec {
                        condition: cond,
                        ..a.clone()
                    })
                }
                StageKind::To(name) => {
                    if !outputs.contains(&name.name.as_str()) {
                        self.push(
                            Diagnostic::new(
                                ErrorKind::UnknownOutput,
                                name.span,
                                format!("unknown output `{}`", name.name),
                            )
                            .with_suggestion(&name.name, outputs.iter().copied())
                            .or_hint("declare it: `output alerts = file(path: \"alerts.ndjson\")`, or use `to stdout`"),
                        );
                    }
                    stage.kind.clone()
                }
                StageKind::Repartition(keys) => {
                    if repartitioned {
                        self.push(
                            Diagnostic::new(
                                ErrorKind::InvalidRepartition,
                                stage.span,
                                "a pipeline can repartition only once",
                            )
                            .with_hint(
                                "repartition by every field the window groups by, once, before it",
                            ),
                        );
                    }
                    if windowed {
                        self.push(
                            Diagnostic::new(
                                ErrorKind::InvalidRepartition,
                                stage.span,
                                "`repartition` must come before the window",
                            )
                            .with_hint("it moves events so that each window key is counted in one process: `| repartition by service | window tumbling 1m by service { .. }`"),
                        );
                    }
                    repartitioned = true;
                    self.repartition_source(source, stage.span);
                    let mut columns = Vec::new();
                    for k in keys {
                        match schema.index_of(&k.name) {
                            None => self.unknown_field(&k.name, k.span, &schema),
                            Some(_) if k.name.starts_with('_') => self.push(
                                Diagnostic::new(
                                    ErrorKind::InvalidRepartition,
                                    k.span,
                                    format!("cannot repartition by `{}`", k.name),
                                )
                                .with_hint("repartition by fields of the events, such as the ones the window groups by"),
                            ),
                            Some(index) => columns.push(Column {
                                index,
                                name: k.name.clone(),
                                ty: schema.fields[index].ty,
                            }),
                        }
                    }
                    keyed_by = keys.iter().map(|k| k.name.clone()).collect();
                    rekeyed = false;
                    plan = StagePlan::Repartition(RepartitionPlan {
                        keys: columns,
                        role: RepartitionRole::InProcess,
                    });
                    stage.kind.clone()
                }
                StageKind::Unknown(word) => {
                    self.push(
                        Diagnostic::new(
                            ErrorKind::UnknownStage,
                            word.span,
                            format!("unknown stage `{}`", word.name),
                        )
                        .with_suggestion(&word.name, STAGES)
                        .or_hint(&format!("stages are: {}", STAGES[..10].join(", "))),
                    );
                    stage.kind.clone()
                }
            };
            stages.push(Stage {
                kind,
                span: stage.span,
            });
            plans.push(plan);
        }
        schemas.push(schema);
        (self.diags.len() == errors_before).then(|| CheckedPipeline {
            pipeline: Pipeline {
                stages,
                ..p.clone()
            },
            schemas,
            plans,
        })
    }

    /// `repartition` goes through a Kafka topic beside the source's own:
    /// the source must be a `kafka` source whose topics are named (the
    /// repartition topic gets as many partitions as they have).
    fn repartition_source(&mut self, source: &CheckedSource, span: Span) {
        let c = &source.decl.connector;
        if c.kind.name != "kafka" {
            self.push(
                Diagnostic::new(
                    ErrorKind::InvalidRepartition,
                    span,
                    format!(
                        "`repartition` needs a kafka source; `{}` is a {} source",
                        source.decl.name.name, c.kind.name
                    ),
                )
                .with_hint("one process reads a non-Kafka source whole, so its windows see every event already: leave `repartition` out"),
            );
            return;
        }
        let topics = c
            .arg("topic")
            .map(|a| a.value.strings())
            .unwrap_or_default();
        if let Some(t) = topics.iter().find(|t| t.starts_with('^')) {
            self.push(
                Diagnostic::new(
                    ErrorKind::InvalidRepartition,
                    span,
                    format!("`repartition` needs the source's topics by name, not a pattern (`{t}`)"),
                )
                .with_hint("its topic gets as many partitions as the source's topics have: list them by name"),
            );
        }
    }

    pub(super) fn parse_stage(
        &mut self,
        field: &Ident,
        format: &FormatSpec,
        fields: &[FieldDecl],
        schema: &mut Schema,
    ) -> Option<ParsePlan> {
        let mut captures = Vec::new();
        let mut plan_format = format.format.clone();
        match schema.get(&field.name) {
            None => self.unknown_field(&field.name, field.span, schema),
            Some(t) if !t.is_textual() => self.push(Diagnostic::new(
                ErrorKind::TypeMismatch,
                field.span,
                format!("can only parse text, `{}` is {t}", field.name),
            )),
            _ => {}
        }
        match &format.format {
            Some(Format::Regex(p)) => {
                if let Some(r) = self.regex_fields(p, format.span) {
                    for (n, ty) in r.fields {
                        schema.push(&n, ty.unwrap_or(Type::String));
                        captures.push(n);
                    }
                    // The engine runs the expanded regex.
                    plan_format = Some(Format::Regex(r.regex));
                }
            }
            Some(Format::Json | Format::Logfmt) => {
                if fields.is_empty() {
                    self.push(
                        Diagnostic::new(
                            ErrorKind::MissingArgument,
                            format.span,
                            format!("`parse ... as {}` needs the fields to extract", format.name),
                        )
                        .with_hint("name them with types: `parse payload as json fields { user: string, bytes: int }`"),
                    );
                }
            }
            Some(Format::Plain) => self.push(
                Diagnostic::new(
                    ErrorKind::UnknownFormat,
                    format.span,
                    "`plain` is not a parse format",
                )
                .with_hint("parse as json, logfmt or regex \"...\""),
            ),
            None => self.push(
                Diagnostic::new(
                    ErrorKind::UnknownFormat,
                    format.span,
                    format!("unknown format `{}`", format.name),
                )
                .with_suggestion(&format.name, ["json", "logfmt", "regex"])
                .or_hint("parse as json, logfmt or regex \"...\""),
            ),
        }
        for f in fields {
            if let Some(t) = self.field_type(f) {
                schema.push(&f.name.name, t);
            }
        }
        let mut produced: Vec<String> = fields.iter().map(|f| f.name.name.clone()).collect();
        produced.extend(captures);
        Some(ParsePlan {
            format: plan_format?,
            fields: produced,
        })
    }

    pub(super) fn window(
        &mut self,
        w: &WindowSpec,
        span: Span,
        input: &Schema,
        samples: usize,
    ) -> (WindowSpec, Schema, Option<WindowPlan>) {
        let mut out = Schema::default();
        out.push(WINDOW_START, Type::Timestamp);
        out.push(WINDOW_END, Type::Timestamp);
        if input.get(TIMESTAMP) != Some(Type::Timestamp) {
            self.push(
                Diagnostic::new(
                    ErrorKind::InvalidWindow,
                    span,
                    "windows need the event-time field `timestamp`, which an earlier stage removed",
                )
                .with_hint("do not drop or rename `timestamp` before a window"),
            );
        }
        let durations: Vec<&DurationLit> = match &w.kind {
            WindowKind::Tumbling { size } => vec![size],
            WindowKind::Sliding { size, every } => {
                if every.millis > size.millis {
                    self.push(
                        Diagnostic::new(
                            ErrorKind::InvalidWindow,
                            every.span,
                            "a sliding window cannot slide further than its size",
                        )
                        .with_hint("use `sliding 5m every 1m`: size first, then the step"),
                    );
                } else if every.millis > 0 && size.millis % every.millis != 0 {
                    self.push(
                        Diagnostic::new(
                            ErrorKind::InvalidWindow,
                            every.span,
                            "a sliding window's size must be a whole number of steps",
                        )
                        .with_hint("e.g. `sliding 10m every 2m`"),
                    );
                }
                vec![size, every]
            }
            WindowKind::Session { gap } => vec![gap],
        };
        for d in durations {
            if d.millis == 0 {
                self.push(Diagnostic::new(
                    ErrorKind::InvalidWindow,
                    d.span,
                    "a window duration must be greater than zero",
                ));
            }
        }
        let mut group_by = Vec::with_capacity(w.group_by.len());
        for g in &w.group_by {
            match input.index_of(&g.name) {
                Some(index) => {
                    let ty = input.fields[index].ty;
                    out.push(&g.name, ty);
                    group_by.push(Column {
                        index,
                        name: g.name.clone(),
                        ty,
                    });
                }
                None => self.unknown_field(&g.name, g.span, input),
            }
        }
        let mut aggregates = Vec::new();
        let mut planned = Vec::with_capacity(w.aggregates.len());
        for a in &w.aggregates {
            if out.get(&a.name.name).is_some() {
                self.push(
                    Diagnostic::new(
                        ErrorKind::FieldCollision,
                        a.name.span,
                        format!("window output already has a field `{}`", a.name.name),
                    )
                    .with_hint("give each aggregate a name distinct from the group-by fields and window bounds"),
                );
            }
            let is_agg_call = matches!(&a.value.kind, ExprKind::Call { name, .. }
                if functions::lookup(&name.name).is_some_and(|f| f.aggregate));
            if !is_agg_call {
                self.push(
                    Diagnostic::new(
                        ErrorKind::NotAnAggregate,
                        a.value.span,
                        format!("`{}` in a window must be an aggregate", a.name.name),
                    )
                    .with_hint("use count(), count_distinct(x), sum(x), min(x), max(x), avg(x), quantile(x, 0.99), p50/p95/p99(x); compute other values after the window with `| set`"),
                );
            }
            let (v, t) = self.expr(&a.value, input, Ctx::Aggregate);
            out.push(&a.name.name, t);
            if let ExprKind::Call { name, args } = &v.kind {
                if let Some(func) = Aggregate::from_call(&name.name, args) {
                    planned.push(AggregatePlan {
                        name: a.name.name.clone(),
                        func,
                        arg: args.first().filter(|_| func != Aggregate::Count).cloned(),
                        ty: t,
                    });
                }
            }
            aggregates.push(Assignment {
                name: a.name.clone(),
                value: v,
            });
        }
        if w.aggregates.is_empty() {
            self.push(
                Diagnostic::new(
                    ErrorKind::NotAnAggregate,
                    span,
                    "a window needs at least one aggregate",
                )
                .with_hint("e.g. `{ events = count() }`"),
            );
        }
        if samples > 0 {
            // The alerts after the window read their sample events here.
            if out.get(EVIDENCE).is_some() {
                if let Some(a) = w.aggregates.iter().find(|a| a.name.name == EVIDENCE) {
                    self.push(
                        Diagnostic::new(
                            ErrorKind::FieldCollision,
                            a.name.span,
                            format!("`{EVIDENCE}` holds an alert's sample events"),
                        )
                        .with_hint("name the aggregate otherwise"),
                    );
                }
            }
            out.push(EVIDENCE, Type::String);
            planned.push(AggregatePlan {
                name: EVIDENCE.to_string(),
                func: Aggregate::Samples(samples),
                arg: None,
                ty: Type::String,
            });
        }
        let us = |d: &DurationLit| (d.millis as i64).saturating_mul(1000);
        let plan = input.index_of(TIMESTAMP).map(|timestamp| WindowPlan {
            assigner: match &w.kind {
                WindowKind::Tumbling { size } => Assigner::Tumbling { size_us: us(size) },
                WindowKind::Sliding { size, every } => Assigner::Sliding {
                    size_us: us(size),
                    slide_us: us(every),
                },
                WindowKind::Session { gap } => Assigner::Session { gap_us: us(gap) },
            },
            lateness_us: w.lateness.as_ref().map_or(0, us),
            max_keys: w.max_keys,
            timestamp,
            group_by,
            aggregates: planned,
            per_partition: false,
        });
        (
            WindowSpec {
                aggregates,
                ..w.clone()
            },
            out,
            plan,
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::{Aggregate, Assigner, StagePlan};
    use crate::types::Type;

    const RULES: &str = r#"
source web = stdin() format json fields { latency_ms: float, status: int }
pipeline p {
  from web
  | parse message as regex "(?P<verb>[A-Z]+) (?P<path>\S+)"
  | window sliding 5m every 1m by service, status lateness 10s max_keys 500 {
      n = count(), slow = quantile(latency_ms, 0.9), worst = max(latency_ms)
    }
  | alert "slow" when slow > 900 for 2m
}
"#;

    #[test]
    fn plans_carry_resolved_columns_aggregates_and_the_alerts_window() {
        let program = crate::compile(RULES).unwrap_or_else(|d| panic!("{d:#?}"));
        let p = &program.pipelines[0];
        assert_eq!(p.plans.len(), p.pipeline.stages.len());
        let StagePlan::Parse(parse) = &p.plans[0] else {
            panic!("{:?}", p.plans[0])
        };
        assert_eq!(parse.fields, ["verb", "path"]);
        let StagePlan::Window(w) = &p.plans[1] else {
            panic!("{:?}", p.plans[1])
        };
        let input = &p.schemas[1];
        assert_eq!(
            w.assigner,
            Assigner::Sliding {
                size_us: 300_000_000,
                slide_us: 60_000_000
            }
        );
        assert_eq!(w.lateness_us, 10_000_000);
        assert_eq!(w.max_keys, Some(500));
        assert_eq!(input.fields[w.timestamp].name, "timestamp");
        let groups: Vec<(&str, Type)> =
            w.group_by.iter().map(|c| (c.name.as_str(), c.ty)).collect();
        assert_eq!(groups, [("service", Type::String), ("status", Type::Int)]);
        for c in &w.group_by {
            assert_eq!(input.fields[c.index].name, c.name);
        }
        let aggs: Vec<(&str, Aggregate, Type, bool)> = w
            .aggregates
            .iter()
            .map(|a| (a.name.as_str(), a.func, a.ty, a.arg.is_some()))
            .collect();
        assert_eq!(
            aggs,
            [
                ("n", Aggregate::Count, Type::Int, false),
                ("slow", Aggregate::Quantile(0.9), Type::Float, true),
                ("worst", Aggregate::Max, Type::Float, true),
                // The alert's sample events (default `evidence 3`).
                ("_evidence", Aggregate::Samples(3), Type::String, false),
            ]
        );
        let StagePlan::Alert(a) = &p.plans[2] else {
            panic!("{:?}", p.plans[2])
        };
        assert_eq!(a.window_stage, 1);
        assert_eq!(a.group_fields, ["service", "status"]);
        assert_eq!(a.severity, "warning");
        assert_eq!(a.for_us, 120_000_000);
        assert_eq!(a.resolve_after_us, 60_000_000, "one slide by default");
    }

    #[test]
    fn a_window_keeps_state_per_partition_when_its_keys_are_the_sources_message_keys() {
        let per_partition = |source_args: &str, stages: &str| {
            let text = format!(
                "source s = kafka(topic: \"t\"{source_args}) format json\npipeline p {{\n  from s\n{stages}  | window tumbling 1m by service, host {{ n = count() }}\n}}\n"
            );
            let program = crate::compile(&text).unwrap_or_else(|d| panic!("{d:#?}"));
            let p = &program.pipelines[0];
            match p.plans.last() {
                Some(StagePlan::Window(w)) => w.per_partition,
                other => panic!("{other:?}"),
            }
        };
        assert!(per_partition(", keyed_by: \"service\"", ""));
        assert!(per_partition(
            ", keyed_by: [\"service\", \"host\"]",
            "  | where severity >= warn\n"
        ));
        assert!(!per_partition("", ""), "not keyed");
        assert!(
            !per_partition(", keyed_by: \"environment\"", ""),
            "keyed by a field it does not group by"
        );
        assert!(
            !per_partition(
                ", keyed_by: \"service\"",
                "  | set service = lower(service)\n"
            ),
            "a stage changed the key"
        );
        assert!(
            !per_partition(
                ", keyed_by: \"host\"",
                "  | drop host\n  | rename environment as host\n"
            ),
            "the key's field is another now"
        );
        let errs = crate::compile(
            "source s = kafka(topic: \"t\", keyed_by: \"nope\") format json fields { a: int }\npipeline p {\n  from s\n  | window tumbling 1m by a { n = count() }\n}\n",
        )
        .err()
        .unwrap_or_default();
        assert!(
            errs.iter()
                .any(|d| d.kind == crate::ErrorKind::UnknownField),
            "{errs:#?}"
        );
    }

    #[test]
    fn stage_mistakes_are_reported_in_one_pass() {
        let text = "source s = stdin()\npipeline p {\n  from s\n  | drop nope\n  | alert \"x\" when true\n  | window tumbling 0s { n = count() }\n}\n";
        let errs = crate::compile(text).err().unwrap_or_default();
        let kinds: Vec<_> = errs.iter().map(|d| d.kind).collect();
        use crate::ErrorKind::*;
        assert!(kinds.contains(&UnknownField), "{kinds:?}");
        assert!(kinds.contains(&AlertWithoutWindow), "{kinds:?}");
        assert!(kinds.contains(&InvalidWindow), "{kinds:?}");
    }
}
