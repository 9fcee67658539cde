//! Serves an axum router over HTTP/1.1 with the limits `axum::serve` lacks —
//! for the API of `weir serve` and the `http` source alike: a connection that
//! has not sent a whole request head within `header_timeout` (a slow or
//! half-sent request, or an idle keep-alive connection) is closed; a request
//! whose body and handling take longer than `request_timeout` gets 408; and
//! at most `max_connections` are open at once — past that, new connections
//! wait in the listen backlog instead of taking descriptors the engine needs
//! for its archive files. On shutdown, open connections finish their request
//! and close. Every request carries the client's address
//! (`axum::extract::ConnectInfo<SocketAddr>`); with a TLS acceptor the
//! connection is TLS (rustls), its handshake bounded by `header_timeout`.

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
pub use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// `[http]` in the config file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// A connection must send a request's whole head within this time,
    /// also when it is idle between requests; else it is closed.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// A request's body and handling together (a half-sent body is cut off
    /// here); above the longest query time.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// How long shutdown waits for requests in progress.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: &HttpSettings,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    serve_tls(listener, router, settings, None, shutdown).await
}

/// [`serve`], over TLS when `tls` is given.
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    settings: &HttpSettings,
    tls: Option<TlsAcceptor>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let router = router.layer(axum::middleware::from_fn_with_state(
        settings.request_timeout,
        deadline,
    ));
    let slots = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    // Dropped on shutdown: every connection then finishes gracefully.
    let (stop_tx, stop_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = TowerToHyperService::new(tower::service_fn(
            move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                router.clone().oneshot(req)
            },
        ));
        let mut stop = stop_rx.clone();
        let header_timeout = settings.header_timeout;
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let res = match tls {
                None => serve_connection(stream, service, header_timeout, &mut stop).await,
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            serve_connection(stream, service, header_timeout, &mut stop).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            if let Err(e) = res {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    drop(stop_tx);
    drop(listener);
    // Every connection holds a permit: all of them back means all closed.
    let all = u32::try_from(settings.max_connections.max(1)).unwrap_or(u32::MAX);
    if tokio::time::timeout(settings.shutdown_grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            grace = ?settings.shutdown_grace,
            "requests still in progress at shutdown were cut off"
        );
    }
    Ok(())
}

/// Serves one connection until it ends or the server stops (then it
/// finishes its request and closes).
async fn serve_connection<I, S>(
    io: I,
    service: S,
    header_timeout: Duration,
    stop: &mut watch::Receiver<()>,
) -> Result<(), hyper::Error>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming> + Send + 'static,
    S::Future: Send + 'static,
    S::ResBody: Send + 'static,
    <S::ResBody as axum::body::HttpBody>::Data: Send,
    <S::ResBody as axum::body::HttpBody>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => res,
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}

/// Answers 408 when reading the body and handling the request take longer
/// than `limit`.
async fn deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            format!("the request took longer than {limit:?}\n"),
        )
            .into_response(),
    }
}
