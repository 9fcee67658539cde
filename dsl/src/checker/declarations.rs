//! Checking declarations: sources (connector arguments, format, declared
//! fields, the schema their events have), outputs and archives.

use super::*;

/// A checked format regex: what the engine runs (grok patterns expanded),
/// and its captures with the type a grok reference gave them.
pub(super) struct RegexFields {
    pub regex: String,
    pub fields: Vec<(String, Option<Type>)>,
}

impl Checker {
    pub(super) fn connector(&mut self, c: &Connector, table: &[ConnectorSpec], what: &str) -> bool {
        let Some(spec) = table.iter().find(|s| s.kind == c.kind.name) else {
            let kinds: Vec<&str> = table.iter().map(|s| s.kind).collect();
            self.push(
                Diagnostic::new(
                    ErrorKind::UnknownSourceKind,
                    c.kind.span,
                    format!("unknown {what} kind `{}`", c.kind.name),
                )
                .with_suggestion(&c.kind.name, kinds.iter().copied())
                .or_hint(&format!("{what} kinds are: {}", kinds.join(", "))),
            );
            return false;
        };
        let mut ok = true;
        for a in &c.args {
            let Some(aspec) = spec.args.iter().find(|s| s.name == a.name.name) else {
                let names: Vec<&str> = spec.args.iter().map(|s| s.name).collect();
                self.push(
                    Diagnostic::new(
                        ErrorKind::UnknownArgument,
                        a.name.span,
                        format!("`{}` takes no argument `{}`", spec.kind, a.name.name),
                    )
                    .with_suggestion(&a.name.name, names.iter().copied())
                    .or_hint(&if names.is_empty() {
                        format!("`{}` takes no arguments", spec.kind)
                    } else {
                        format!("`{}` takes: {}", spec.kind, names.join(", "))
                    }),
                );
                ok = false;
                continue;
            };
            if let (ArgType::Regex, ArgValue::Str(pattern)) = (aspec.ty, &a.value) {
                if let Err(e) = regex::bytes::Regex::new(pattern) {
                    self.push(
                        Diagnostic::new(
                            ErrorKind::InvalidRegex,
                            a.span,
                            format!("argument `{}` is not a valid regex", a.name.name),
                        )
                        .with_hint(e.to_string()),
                    );
                    ok = false;
                }
            }
            if !arg_fits(aspec.ty, &a.value) {
                self.push(
                    Diagnostic::new(
                        ErrorKind::InvalidArgument,
                        a.span,
                        format!(
                            "argument `{}` must be {}, found {}",
                            a.name.name,
                            aspec.ty.describe(),
                            a.value.type_name()
                        ),
                    )
                    .with_hint(aspec.doc),
                );
                ok = false;
            }
        }
        for req in spec.args.iter().filter(|a| a.required) {
            if c.arg(req.name).is_none() {
                self.push(
                    Diagnostic::new(
                        ErrorKind::MissingArgument,
                        c.span,
                        format!("`{}` needs the argument `{}`", spec.kind, req.name),
                    )
                    .with_hint(format!("{}: {}", req.name, req.doc)),
                );
                ok = false;
            }
        }
        ok
    }

    pub(super) fn field_type(&mut self, f: &FieldDecl) -> Option<Type> {
        let t = Type::from_name(&f.ty.name);
        if t.is_none() {
            self.push(
                Diagnostic::new(
                    ErrorKind::UnknownType,
                    f.ty.span,
                    format!("unknown type `{}`", f.ty.name),
                )
                .with_suggestion(&f.ty.name, Type::NAMES)
                .or_hint(&format!("types are: {}", Type::NAMES.join(", "))),
            );
        }
        t
    }

    pub(super) fn source(&mut self, s: &SourceDecl) -> Option<CheckedSource> {
        let mut ok = self.connector(&s.connector, connectors::SOURCES, "source");
        let mut schema = Schema::core();
        let format = match &s.format {
            None => Format::Json,
            Some(spec) => match &spec.format {
                Some(Format::Regex(pattern)) => match self.regex_fields(pattern, spec.span) {
                    Some(r) => {
                        for (n, ty) in r.fields {
                            match (schema.get(&n), ty) {
                                (None, ty) => schema.push(&n, ty.unwrap_or(Type::String)),
                                (Some(core), Some(ty)) if core != ty => {
                                    self.push(Diagnostic::new(
                                        ErrorKind::TypeMismatch,
                                        spec.span,
                                        format!("`{n}` is a built-in field of type {core} and cannot be captured as {ty}"),
                                    ).with_hint(format!("leave the type out: %{{PATTERN:{n}}}")));
                                    ok = false;
                                }
                                _ => {}
                            }
                        }
                        // The engine runs the expanded regex.
                        Format::Regex(r.regex)
                    }
                    None => {
                        ok = false;
                        Format::Regex(pattern.clone())
                    }
                },
                Some(f) => f.clone(),
                None => {
                    self.push(
                        Diagnostic::new(
                            ErrorKind::UnknownFormat,
                            spec.span,
                            format!("unknown format `{}`", spec.name),
                        )
                        .with_suggestion(
                            &spec.name,
                            ["json", "logfmt", "plain", "regex"]
                                .into_iter()
                                .chain(crate::presets::PRESETS.iter().map(|p| p.name)),
                        )
                        .or_hint(&format!(
                            "formats are: json, logfmt, plain, regex \"...\", and the named ones {}",
                            crate::presets::PRESETS
                                .iter()
                                .map(|p| p.name)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    );
                    ok = false;
                    Format::Json
                }
            },
        };
        for f in &s.fields {
            match self.field_type(f) {
                Some(t) => {
                    if f.name.name == TIMESTAMP && t != Type::Timestamp
                        || f.name.name == OFFSET
                        || f.name.name == RAW
                    {
                        self.push(
                            Diagnostic::new(
                                ErrorKind::TypeMismatch,
                                f.name.span,
                                format!("`{}` is a built-in field and cannot be redeclared as {t}", f.name.name),
                            )
                            .with_hint("every source has timestamp: timestamp, _offset: int and _raw: string"),
                        );
                        ok = false;
                    } else {
                        schema.push(&f.name.name, t);
                    }
                }
                None => ok = false,
            }
        }
        if let Some((zone, span)) = &s.timezone {
            if let Err(e) = weir_formats::timestamp::Zone::parse(zone) {
                self.push(Diagnostic::new(ErrorKind::InvalidArgument, *span, e).with_hint(
                    "e.g. `timezone \"Europe/Berlin\"` or `timezone \"+02:00\"`; times that carry a zone keep it",
                ));
                ok = false;
            }
        }
        if let Some((f, span)) = &s.timestamp_format {
            if let Err(e) = weir_formats::timestamp::TimestampParser::new(Some(f), None) {
                self.push(Diagnostic::new(ErrorKind::InvalidArgument, *span, e).with_hint(
                    "e.g. `timestamp_format \"%d/%b/%Y:%H:%M:%S %z\"`; leave it out to detect RFC 3339, syslog, Common Log Format, ctime and epoch times",
                ));
                ok = false;
            }
        }
        let keyed_by = self.keyed_by(s, &schema);
        ok.then(|| CheckedSource {
            replayable: connectors::source(&s.connector.kind.name).is_some_and(|c| c.replayable),
            keyed_by,
            decl: s.clone(),
            format,
            schema,
        })
    }

    /// A source's `keyed_by` fields, each checked to be a field of its
    /// events.
    fn keyed_by(&mut self, s: &SourceDecl, schema: &Schema) -> Vec<String> {
        let Some(arg) = s.connector.arg("keyed_by") else {
            return Vec::new();
        };
        let names = arg.value.strings();
        for n in &names {
            if schema.get(n).is_none() {
                self.unknown_field(n, arg.span, schema);
            }
        }
        names
    }

    /// Expands a format regex's grok patterns (`%{IP:client}`), compiles
    /// it, and returns the regex the engine runs with its captures, each
    /// with the type a grok reference gave it (`%{NUMBER:bytes:int}`).
    pub(super) fn regex_fields(&mut self, pattern: &str, span: Span) -> Option<RegexFields> {
        let expanded = match weir_formats::grok::expand(pattern) {
            Ok(e) => e,
            Err(e) => {
                let bad = pattern.get(e.at..e.at + e.len).unwrap_or(pattern);
                self.push(
                    Diagnostic::new(ErrorKind::InvalidRegex, span, e.message)
                        .with_label(format!("in `{bad}`"))
                        .with_hint(e.hint),
                );
                return None;
            }
        };
        let re = match regex::Regex::new(&expanded.regex) {
            Err(e) => {
                self.push(
                    Diagnostic::new(ErrorKind::InvalidRegex, span, "invalid regex")
                        .with_label(first_line(&e.to_string()))
                        .with_hint("the syntax is Rust's regex crate: https://docs.rs/regex"),
                );
                return None;
            }
            Ok(re) => re,
        };
        let mut fields = Vec::new();
        for name in re.capture_names().flatten() {
            let written = expanded.types.iter().find(|(f, _)| f == name);
            let ty = match written {
                None => None,
                Some((_, t)) => match Type::from_name(t) {
                    Some(t) => Some(t),
                    None => {
                        self.push(
                            Diagnostic::new(
                                ErrorKind::UnknownType,
                                span,
                                format!("unknown type `{t}` for the capture `{name}`"),
                            )
                            .with_suggestion(t, Type::NAMES)
                            .or_hint(&format!("types are: {}", Type::NAMES.join(", "))),
                        );
                        return None;
                    }
                },
            };
            fields.push((name.to_string(), ty));
        }
        if fields.is_empty() {
            self.push(
                Diagnostic::new(
                    ErrorKind::InvalidRegex,
                    span,
                    "the regex has no named captures, so it would produce no fields",
                )
                .with_hint("name what you capture: (?P<status>\\d{3}) or %{INT:status:int}"),
            );
            return None;
        }
        Some(RegexFields {
            regex: expanded.regex,
            fields,
        })
    }

    /// `index (COLUMN, …)`: text columns of the archived source; or `index none`.
    fn archive_index(&mut self, index: &ArchiveIndex, schema: &Schema) {
        if let Some(w) = index.word.as_ref().filter(|w| w.name != "none") {
            self.push(
                Diagnostic::new(
                    ErrorKind::InvalidArgument,
                    w.span,
                    format!("`index {}` is not an archive option", w.name),
                )
                .with_hint("index (trace_id, order_no) names the columns with bloom filters; index none writes none"),
            );
        }
        for c in &index.columns {
            match schema.get(&c.name) {
                None => self.push(
                    Diagnostic::new(
                        ErrorKind::UnknownField,
                        c.span,
                        format!("cannot index unknown field `{}`", c.name),
                    )
                    .with_suggestion(&c.name, schema.names())
                    .or_hint("declare it in the source's `fields { … }`"),
                ),
                Some(Type::String) => {}
                Some(ty) => self.push(
                    Diagnostic::new(
                        ErrorKind::InvalidArgument,
                        c.span,
                        format!("`{}` is {ty}; bloom filters index text columns", c.name),
                    )
                    .with_hint("a lookup on a number or time column is pruned by its min/max statistics already"),
                ),
            }
        }
    }

    pub(super) fn archive(
        &mut self,
        a: &ArchiveDecl,
        sources: &[&str],
        schema: Option<&Schema>,
        archived: &mut HashSet<String>,
    ) {
        if let (Some(index), Some(schema)) = (&a.index, schema) {
            self.archive_index(index, schema);
        }
        if !sources.contains(&a.source.name.as_str()) {
            self.push(
                Diagnostic::new(
                    ErrorKind::UnknownSource,
                    a.source.span,
                    format!("cannot archive unknown source `{}`", a.source.name),
                )
                .with_suggestion(&a.source.name, sources.iter().copied()),
            );
        } else if !archived.insert(a.source.name.clone()) {
            self.push(
                Diagnostic::new(
                    ErrorKind::DuplicateArchive,
                    a.span,
                    format!("source `{}` is archived twice", a.source.name),
                )
                .with_hint("one archive per source; its events are written once"),
            );
        }
        if let Some(p) = &a.partition {
            if p.name != "hour" && p.name != "day" {
                self.push(
                    Diagnostic::new(
                        ErrorKind::InvalidArgument,
                        p.span,
                        format!("cannot partition by `{}`", p.name),
                    )
                    .with_hint("partition by hour or by day"),
                );
            }
        }
        if let Some(r) = &a.raw {
            if !["full", "rest", "none"].contains(&r.name.as_str()) {
                self.push(
                    Diagnostic::new(
                        ErrorKind::InvalidArgument,
                        r.span,
                        format!("`raw {}` is not an archive option", r.name),
                    )
                    .with_hint("raw rest (a JSON line's undeclared fields; the default), raw full (the whole line) or raw none"),
                );
            }
        }
        if let Some((url, span)) = &a.url {
            if let Some((scheme, _)) = url.split_once("://") {
                if !["file", "s3", "s3a", "gs", "az", "abfs", "memory"].contains(&scheme) {
                    self.push(
                        Diagnostic::new(
                            ErrorKind::InvalidArgument,
                            *span,
                            format!("unsupported archive scheme `{scheme}://`"),
                        )
                        .with_hint("use file://, s3://, gs:// or az://, or a plain folder path"),
                    );
                }
            }
        }
        if a.roll_size == Some(0) || a.roll_every == Some(0) {
            self.push(Diagnostic::new(
                ErrorKind::InvalidArgument,
                a.span,
                "archive files cannot roll at size or age zero",
            ));
        }
    }
}

fn arg_fits(ty: ArgType, v: &ArgValue) -> bool {
    match (ty, v) {
        (ArgType::Any, _) => true,
        (
            ArgType::Str | ArgType::Path | ArgType::Address | ArgType::Brokers | ArgType::Regex,
            ArgValue::Str(_),
        ) => true,
        (ArgType::Int, ArgValue::Int(i)) => *i >= 0,
        (ArgType::Bool, ArgValue::Bool(_)) => true,
        (ArgType::Duration, ArgValue::Duration(_)) => true,
        (ArgType::Size, ArgValue::Size(_)) => true,
        (ArgType::StrOrList | ArgType::ClientOptions, ArgValue::Str(_)) => true,
        (ArgType::StrOrList | ArgType::ClientOptions, ArgValue::List(items)) => {
            !items.is_empty() && items.iter().all(|i| matches!(i, ArgValue::Str(_)))
        }
        (ArgType::Word(words), ArgValue::Ident(w)) => words.contains(&w.as_str()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::types::Type;
    use crate::ErrorKind;

    #[test]
    fn sources_get_their_formats_fields_and_replayability() {
        let text = r#"
source web = file(path: "access.log") format regex "(?P<ip>\S+) (?P<status>\d+)"
  fields { status: int }
source bus = kafka(topic: "logs", brokers: "b:9092")
archive web
pipeline p { from web | to stdout }
"#;
        let p = crate::compile(text).unwrap_or_else(|d| panic!("{d:#?}"));
        let web = p.source("web").unwrap_or_else(|| panic!("no web"));
        assert_eq!(web.schema.get("ip"), Some(Type::String));
        assert_eq!(web.schema.get("status"), Some(Type::Int));
        assert!(!web.replayable);
        assert!(p.source("bus").is_some_and(|s| s.replayable));
        assert_eq!(p.archives.len(), 1);
    }

    #[test]
    fn declaration_mistakes_are_named() {
        let text = "source a = ftp(host: \"x\")\nsource b = file(pth: \"x\")\narchive nowhere\nsource c = stdin() format regex \"(\"\nsource d = file(path: \"x\", first_line: \"[\")\n";
        let kinds: Vec<ErrorKind> = crate::compile(text)
            .err()
            .unwrap_or_default()
            .iter()
            .map(|d| d.kind)
            .collect();
        for k in [
            ErrorKind::UnknownSourceKind,
            ErrorKind::UnknownArgument,
            ErrorKind::UnknownSource,
            ErrorKind::InvalidRegex,
        ] {
            assert!(kinds.contains(&k), "{k:?} missing from {kinds:?}");
        }
    }

    #[test]
    fn timestamp_settings_are_checked_where_they_are_written() {
        let check = |text: &str, want: &[&str]| {
            let errs = crate::compile(text).err().unwrap_or_default();
            let found: Vec<(ErrorKind, &str)> = errs
                .iter()
                .map(|d| (d.kind, &text[d.span.start..d.span.end]))
                .collect();
            let want: Vec<(ErrorKind, &str)> = want
                .iter()
                .map(|w| (ErrorKind::InvalidArgument, *w))
                .collect();
            assert_eq!(found, want, "{errs:#?}");
        };
        check(
            "source a = stdin() timestamp_format \"%Q\" timezone \"Mars/Olympus\"\n",
            &["\"Mars/Olympus\"", "\"%Q\""],
        );
        check(
            "source a = stdin()\npipeline p {\n  from a\n  | set t = parse_timestamp(message, \"%Q\", \"Nowhere\")\n}\n",
            &["\"%Q\"", "\"Nowhere\""],
        );
    }
}
