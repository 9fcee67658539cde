//! `http(listen: "127.0.0.1:9000")`: services POST newline-delimited events to
//! any path; each request body becomes one batch. Answers 202 once the batch is
//! handed to the engine, 503 when the engine has stopped, 413 over 16 MiB.
//! Under `weir serve` a request needs `Authorization: Bearer TOKEN` of an
//! identity allowed to ingest (401 otherwise); see [`IngestAuth`].

use super::lines::now_us;
use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use weir_engine::{EngineError, LineBatch, LineSender, Result, Source};

/// Decides whether a request's `Authorization` header may send events.
pub trait IngestAuth: Send + Sync {
    fn allows(&self, authorization: Option<&str>) -> bool;
}

pub struct HttpSource {
    pub name: String,
    pub listen: String,
    pub auth: Option<Arc<dyn IngestAuth>>,
}

impl HttpSource {
    /// `http(listen: "127.0.0.1:9000")`.
    pub fn from_decl(
        f: &crate::LocalFactory,
        source: &weir_dsl::CheckedSource,
    ) -> Result<Box<dyn Source>> {
        let args = crate::args::Args(&source.decl.connector);
        Ok(Box::new(HttpSource {
            name: source.decl.name.name.clone(),
            listen: args.str("listen").unwrap_or(DEFAULT_LISTEN).to_string(),
            auth: f.ingest_auth.clone(),
        }))
    }
}

/// Where an `http` source listens unless told.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9000";

/// Largest request body accepted.
const MAX_BODY: usize = 16 << 20;

#[derive(Clone)]
struct Ingest {
    out: LineSender,
    offset: Arc<AtomicI64>,
    auth: Option<Arc<dyn IngestAuth>>,
}

async fn ingest(
    State(s): State<Ingest>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    if let Some(auth) = &s.auth {
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !auth.allows(given) {
            return (
                StatusCode::UNAUTHORIZED,
                "send `Authorization: Bearer TOKEN` of a token with the shipper, editor or admin role\n",
            );
        }
    }
    let mut batch = LineBatch::with_capacity(body.len() + 1, 64);
    for line in body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        batch.push(line);
    }
    batch.first_offset = s.offset.fetch_add(batch.len() as i64, Ordering::Relaxed);
    batch.received_at_us = now_us();
    match s.out.send(batch).await {
        Ok(()) => (StatusCode::ACCEPTED, ""),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "engine stopped\n"),
    }
}

#[async_trait]
impl Source for HttpSource {
    async fn run(self: Box<Self>, out: LineSender, shutdown: CancellationToken) -> Result<()> {
        let listener = TcpListener::bind(&self.listen).await.map_err(|e| {
            EngineError::connector(&self.name, format!("cannot listen on {}: {e}", self.listen))
        })?;
        let app = Router::new()
            .fallback(post(ingest))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(Ingest {
                out,
                offset: Arc::new(AtomicI64::new(0)),
                auth: self.auth,
            });
        crate::http_server::serve(
            listener,
            app,
            &crate::http_server::HttpSettings::default(),
            shutdown.cancelled_owned(),
        )
        .await
        .map_err(|e| EngineError::io("http source", e))
    }
}
