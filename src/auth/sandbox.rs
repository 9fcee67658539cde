//! What rules submitted over the API may reach. Rules from the config file
//! or the command line are the operator's own and are not limited; rules
//! from the network may only name files under the allowed folders (never
//! the identity store or the audit log), Kafka brokers the server is
//! configured with, listen addresses the settings allow, raw Kafka client
//! settings from a short list of harmless ones, the default archive
//! location, and windows up to a size. Each refusal is a diagnostic at the
//! offending text. Which arguments are paths, addresses or brokers is
//! declared once, in `weir_dsl::connectors` and `weir_dsl::functions`.

use super::SecuritySettings;
use std::path::{Component, Path, PathBuf};
use weir_dsl::ast::{ArgValue, Connector, Expr, ExprKind, Stage, StageKind};
use weir_dsl::connectors::{self, ArgType, ConnectorSpec};
use weir_dsl::functions::{self, Param};
use weir_dsl::{CheckedProgram, Diagnostic, ErrorKind, Span};

/// Files in the data folder no submitted rule may read or write.
const PRIVATE_FILES: &[&str] = &[
    super::store::FILE,
    "auth.json.tmp",
    "auth.lock",
    super::store::INITIAL_PASSWORD_FILE,
    super::audit::FILE,
];

/// librdkafka settings a submitted rule may set: tuning only, nothing that
/// names a file, a host, a library, or weakens TLS or authentication.
const SAFE_CLIENT_OPTIONS: &[&str] = &[
    "fetch.min.bytes",
    "fetch.max.bytes",
    "fetch.wait.max.ms",
    "fetch.message.max.bytes",
    "max.partition.fetch.bytes",
    "queued.min.messages",
    "queued.max.messages.kbytes",
    "queue.buffering.max.messages",
    "queue.buffering.max.kbytes",
    "queue.buffering.max.ms",
    "linger.ms",
    "batch.num.messages",
    "batch.size",
    "compression.type",
    "compression.codec",
    "compression.level",
    "message.max.bytes",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "partition.assignment.strategy",
    "isolation.level",
    "acks",
    "request.required.acks",
    "request.timeout.ms",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "retries",
    "retry.backoff.ms",
    "socket.timeout.ms",
    "statistics.interval.ms",
    "topic.metadata.refresh.interval.ms",
    "enable.idempotence",
    "max.in.flight.requests.per.connection",
];

/// The limits for one submission.
pub struct Sandbox {
    /// Allowed folders, resolved (symlinks followed).
    folders: Vec<PathBuf>,
    /// The data folder, resolved: its private files are refused.
    data_dir: PathBuf,
    /// Relative paths in submitted rules are relative to this.
    base_dir: PathBuf,
    brokers: Vec<String>,
    listen: Vec<String>,
    max_window_keys: u64,
}

impl Sandbox {
    pub fn new(
        settings: &SecuritySettings,
        data_dir: &Path,
        base_dir: &Path,
        kafka_brokers: &str,
    ) -> Sandbox {
        let resolve = |p: &Path| resolved(p).unwrap_or_else(|| p.to_path_buf());
        let folders = if settings.allowed_paths.is_empty() {
            vec![resolve(data_dir)]
        } else {
            settings.allowed_paths.iter().map(|p| resolve(p)).collect()
        };
        let mut brokers: Vec<String> = split_brokers(kafka_brokers);
        brokers.extend(
            settings
                .allowed_brokers
                .iter()
                .flat_map(|b| split_brokers(b)),
        );
        Sandbox {
            folders,
            data_dir: resolve(data_dir),
            base_dir: base_dir.to_path_buf(),
            brokers,
            listen: settings.allowed_listen.clone(),
            max_window_keys: settings.max_window_keys,
        }
    }

    /// Every refusal in `program`, in the order of the text.
    pub fn check(&self, program: &CheckedProgram) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for s in &program.sources {
            if let Some(spec) = connectors::source(&s.decl.connector.kind.name) {
                self.connector(spec, &s.decl.connector, &mut out);
            }
        }
        for o in &program.outputs {
            if let Some(spec) = connectors::output(&o.connector.kind.name) {
                self.connector(spec, &o.connector, &mut out);
            }
        }
        for a in &program.archives {
            if let Some((url, span)) = &a.url {
                if url.contains("://") && !url.starts_with("file://") {
                    out.push(refuse(
                        *span,
                        format!("rules submitted over the API may not archive to `{url}`"),
                        "leave out `to` to use the server's archive, or set it in weir.toml",
                    ));
                } else {
                    self.path(url.trim_start_matches("file://"), *span, &mut out);
                }
            }
        }
        for p in &program.pipelines {
            for stage in &p.pipeline.stages {
                self.stage(stage, &mut out);
            }
        }
        out.sort_by_key(|d| d.span.start);
        out
    }

    fn stage(&self, stage: &Stage, out: &mut Vec<Diagnostic>) {
        match &stage.kind {
            StageKind::Where(e) => self.expr(e, out),
            StageKind::Set(assignments) => {
                assignments.iter().for_each(|a| self.expr(&a.value, out))
            }
            StageKind::Geoip { database, .. } => self.path(&database.0, database.1, out),
            StageKind::Window(w) => {
                if let Some(keys) = w.max_keys.filter(|k| *k > self.max_window_keys) {
                    out.push(refuse(
                        stage.span,
                        format!(
                            "max_keys {keys} is more than rules submitted over the API may ask for ({})",
                            self.max_window_keys
                        ),
                        "lower it, or raise [security] max_window_keys",
                    ));
                }
                w.aggregates.iter().for_each(|a| self.expr(&a.value, out));
            }
            StageKind::Alert(a) => self.expr(&a.condition, out),
            _ => {}
        }
    }

    /// File paths in calls (`lookup("table.csv", ...)`), anywhere in `e`.
    fn expr(&self, e: &Expr, out: &mut Vec<Diagnostic>) {
        file_args(e, &mut |path, span| self.path(path, span, out));
    }

    /// Where an expression names a file, if it does (a filter typed in the
    /// console may name none).
    pub fn names_a_file(e: &Expr) -> Option<Span> {
        let mut first = None;
        file_args(e, &mut |_, span| {
            first.get_or_insert(span);
        });
        first
    }

    fn connector(&self, spec: &ConnectorSpec, c: &Connector, out: &mut Vec<Diagnostic>) {
        for a in &c.args {
            let Some(arg) = spec.args.iter().find(|s| s.name == a.name.name) else {
                continue;
            };
            match (arg.ty, &a.value) {
                (ArgType::Path, ArgValue::Str(p)) => self.path(p, a.span, out),
                (ArgType::Address, ArgValue::Str(addr)) => self.address(addr, a.span, out),
                (ArgType::Brokers, ArgValue::Str(b)) => self.brokers(b, a.span, out),
                (ArgType::ClientOptions, v) => self.client_options(v, a.span, out),
                _ => {}
            }
        }
        // An http source without `listen` binds the default address.
        if spec.args.iter().any(|s| s.ty == ArgType::Address)
            && !spec
                .args
                .iter()
                .filter(|s| s.ty == ArgType::Address)
                .any(|s| c.arg(s.name).is_some())
        {
            self.address(weir_connectors::sources::http::DEFAULT_LISTEN, c.span, out);
        }
    }

    fn path(&self, text: &str, span: Span, out: &mut Vec<Diagnostic>) {
        let given = Path::new(text);
        if given.components().any(|c| c == Component::ParentDir) {
            out.push(refuse(
                span,
                format!("`{text}`: `..` is not allowed in paths of rules submitted over the API"),
                self.folders_hint(),
            ));
            return;
        }
        let full = if given.is_absolute() {
            given.to_path_buf()
        } else {
            self.base_dir.join(given)
        };
        let real = resolved(&full);
        let inside = real
            .as_ref()
            .is_some_and(|r| self.folders.iter().any(|f| r.starts_with(f)));
        if !inside {
            out.push(refuse(
                span,
                format!("`{text}` is outside the folders rules submitted over the API may use"),
                self.folders_hint(),
            ));
            return;
        }
        let private = real.as_ref().is_some_and(|r| {
            r.parent() == Some(self.data_dir.as_path())
                && r.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| PRIVATE_FILES.contains(&n))
        });
        if private {
            out.push(refuse(
                span,
                format!("`{text}` is one of the server's private files"),
                "the identity store, the initial password and the audit log cannot be read or written by rules",
            ));
        }
    }

    fn folders_hint(&self) -> String {
        let list: Vec<String> = self
            .folders
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        format!(
            "use a path under {} (relative paths are relative to {}); [security] allowed_paths in weir.toml sets the folders",
            list.join(", "),
            self.base_dir.display()
        )
    }

    fn address(&self, addr: &str, span: Span, out: &mut Vec<Diagnostic>) {
        let (host, port) = split_host_port(addr);
        let allowed = self.listen.iter().any(|pattern| {
            let (h, p) = split_host_port(pattern);
            h.eq_ignore_ascii_case(host) && (p == "*" || p == port)
        });
        if !allowed {
            out.push(refuse(
                span,
                format!("rules submitted over the API may not listen on `{addr}`"),
                format!(
                    "allowed: {}; [security] allowed_listen in weir.toml sets them",
                    self.listen.join(", ")
                ),
            ));
        }
    }

    fn brokers(&self, text: &str, span: Span, out: &mut Vec<Diagnostic>) {
        for b in split_brokers(text) {
            if !self.brokers.contains(&b) {
                out.push(refuse(
                    span,
                    format!("rules submitted over the API may not connect to broker `{b}`"),
                    if self.brokers.is_empty() {
                        "leave out `brokers` to use [kafka] brokers from weir.toml, or list it in [security] allowed_brokers".to_string()
                    } else {
                        format!(
                            "allowed: {}; or leave out `brokers` to use [kafka] brokers",
                            self.brokers.join(", ")
                        )
                    },
                ));
            }
        }
    }

    fn client_options(&self, v: &ArgValue, span: Span, out: &mut Vec<Diagnostic>) {
        for item in v.strings() {
            let key = item.split('=').next().unwrap_or("").trim();
            if !SAFE_CLIENT_OPTIONS.contains(&key) {
                out.push(refuse(
                    span,
                    format!("rules submitted over the API may not set the Kafka client option `{key}`"),
                    "only tuning options (fetch, queue, batch, linger, compression, timeouts...) may be set from the API; put others in [kafka] options in weir.toml",
                ));
            }
        }
    }
}

/// Calls `f` with every file path argument (`Param::PathLit`) in `e`.
fn file_args(e: &Expr, f: &mut impl FnMut(&str, Span)) {
    match &e.kind {
        ExprKind::Call { name, args } => {
            if let Some(sig) = functions::lookup(&name.name) {
                for (p, a) in sig.params.iter().zip(args) {
                    if *p == Param::PathLit {
                        match &a.kind {
                            ExprKind::Lit(weir_dsl::ast::Literal::Str(s)) => f(s, a.span),
                            // Not a literal: the checker refuses it; never pass it.
                            _ => f("", a.span),
                        }
                    }
                }
            }
            args.iter().for_each(|a| file_args(a, f));
        }
        ExprKind::List(items) => items.iter().for_each(|a| file_args(a, f)),
        ExprKind::Unary(_, a) | ExprKind::IsNull { expr: a, .. } => file_args(a, f),
        ExprKind::Binary(_, a, b) => {
            file_args(a, f);
            file_args(b, f);
        }
        ExprKind::Field(_) | ExprKind::Lit(_) => {}
    }
}

fn refuse(span: Span, message: String, hint: impl Into<String>) -> Diagnostic {
    Diagnostic::new(ErrorKind::NotAllowed, span, message).with_hint(hint)
}

/// `host:port` (also `[v6]:port`) split; no port gives "".
fn split_host_port(addr: &str) -> (&str, &str) {
    let addr = addr.trim();
    if let Some(rest) = addr.strip_prefix('[') {
        let (h, p) = rest.split_once(']').unwrap_or((rest, ""));
        return (h, p.trim_start_matches(':'));
    }
    addr.rsplit_once(':').unwrap_or((addr, ""))
}

fn split_brokers(text: &str) -> Vec<String> {
    text.split(',')
        .map(|b| b.trim().to_ascii_lowercase())
        .filter(|b| !b.is_empty())
        .collect()
}

/// The path with symlinks followed; for a path that does not exist yet (an
/// output), its nearest existing folder resolved and the rest appended.
fn resolved(p: &Path) -> Option<PathBuf> {
    if let Ok(r) = p.canonicalize() {
        return Some(r);
    }
    let mut rest = Vec::new();
    let mut cur = p;
    loop {
        rest.push(cur.file_name()?.to_os_string());
        cur = cur.parent()?;
        if let Ok(r) = cur.canonicalize() {
            let mut out = r;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return Some(out);
        }
    }
}
