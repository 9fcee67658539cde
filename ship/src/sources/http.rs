//! `type: http`: services POST newline-delimited events (JSON or text) to any
//! path. The answer (202) comes once every event is in Kafka or the spool;
//! 503 while the agent stops.

use super::SourceCtx;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use std::sync::Arc;
use tokio::sync::Mutex;

pub async fn run(ctx: SourceCtx) -> Result<(), crate::ShipError> {
    let listen = ctx.cfg.listen.clone().unwrap_or_default();
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| crate::ShipError::io(format!("cannot listen on {listen}"), e))?;
    let cancel = ctx.cancel.clone();
    let state = Arc::new(Mutex::new(ctx));
    let app = Router::new()
        .route("/", post(receive))
        .route("/{*path}", post(receive))
        .layer(DefaultBodyLimit::max(16 << 20))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
        .map_err(|e| crate::ShipError::io("http source", e))
}

async fn receive(State(ctx): State<Arc<Mutex<SourceCtx>>>, body: Bytes) -> StatusCode {
    let text = String::from_utf8_lossy(&body);
    let rx = {
        let mut ctx = ctx.lock().await;
        ctx.send_lines(text.lines().filter(|l| !l.trim().is_empty()), true)
            .await
    };
    match rx {
        Some(rx) => match rx.await {
            Ok(true) => StatusCode::ACCEPTED,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        },
        None => StatusCode::SERVICE_UNAVAILABLE,
    }
}
