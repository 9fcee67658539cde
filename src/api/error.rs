//! The API's one error type (as in axum's error-handling example): handlers
//! return `Result<_, ApiError>` and use `?`; each error becomes a status and
//! a JSON body `{"error": "...", ...}`. Rules errors carry their located
//! diagnostics and the rendered text.

use crate::engine_host::DeployError;
use crate::query::QueryError;
use axum::extract::rejection::JsonRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use weir_dsl::LocatedDiagnostic;
use weir_engine::alerting::SilenceError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (bad JSON, a bad matcher, bad SQL).
    #[error("{0}")]
    BadRequest(String),
    /// No valid credentials (401, with `WWW-Authenticate`).
    #[error("{0}")]
    Unauthorized(String),
    /// The caller's role or scope does not allow it, or the request asks
    /// for something this endpoint never does (SQL that writes).
    #[error("{0}")]
    Forbidden(String),
    /// A `Host` this server does not answer to (421).
    #[error("{0}")]
    MisdirectedRequest(String),
    /// A body of a type the route does not take (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A body over a limit (413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Too many tries (429, with `Retry-After`).
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: u64 },
    #[error("{0}")]
    NotFound(String),
    /// A name is taken.
    #[error("{0}")]
    Conflict(String),
    /// Well-formed but refused: invalid rules (with their diagnostics) or a
    /// request past a limit.
    #[error("{error}")]
    Unprocessable {
        error: String,
        diagnostics: Option<Vec<LocatedDiagnostic>>,
        /// The diagnostics rendered as `weir check` prints them.
        text: Option<String>,
    },
    /// Too busy now; try again after a second.
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    Internal(String),
    /// A body axum's extractor refused (not JSON, the wrong shape), with
    /// its status (400, 415 or 422).
    #[error("{1}")]
    Rejected(StatusCode, String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::MisdirectedRequest(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Rejected(status, _) => *status,
        }
    }

    /// A limit was passed: 422 with the reason.
    pub fn over_limit(reason: impl Into<String>) -> ApiError {
        ApiError::Unprocessable {
            error: reason.into(),
            diagnostics: None,
            text: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), error = %self, "API request failed");
        }
        let mut body = json!({ "error": self.to_string() });
        let retry_after = match &self {
            ApiError::TooManyRequests { retry_after, .. } => Some(*retry_after),
            ApiError::Busy(_) => Some(1),
            _ => None,
        };
        if let ApiError::Unprocessable {
            diagnostics, text, ..
        } = self
        {
            if let Some(d) = diagnostics {
                body["diagnostics"] = json!(d);
            }
            if let Some(t) = text {
                body["text"] = json!(t);
            }
        }
        let mut r = (status, Json(body)).into_response();
        if let Some(secs) = retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"weir\""),
            );
        }
        r
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Internal(_) => ApiError::Internal(e.to_string()),
            QueryError::Busy(_) => ApiError::Busy(e.to_string()),
            QueryError::NotReadOnly(_) => ApiError::Forbidden(e.to_string()),
            QueryError::Sql(_)
            | QueryError::Timeout(_)
            | QueryError::TooMuchData { .. }
            | QueryError::TooComplex(_) => ApiError::BadRequest(e.to_string()),
        }
    }
}

impl From<DeployError> for ApiError {
    fn from(e: DeployError) -> Self {
        match e {
            DeployError::Rules(r) => ApiError::Unprocessable {
                error: "invalid rules".into(),
                diagnostics: Some(r.located()),
                text: Some(r.render()),
            },
            DeployError::Plan {
                ref text,
                ref error,
                ..
            } => ApiError::Unprocessable {
                error: "cannot run these rules".into(),
                diagnostics: Some(
                    error
                        .to_diagnostic()
                        .map(|d| vec![d.located(text)])
                        .unwrap_or_default(),
                ),
                text: Some(e.render()),
            },
            DeployError::Conflict(m) => ApiError::Conflict(m),
        }
    }
}

impl From<crate::shadow::ShadowError> for ApiError {
    fn from(e: crate::shadow::ShadowError) -> Self {
        use crate::shadow::ShadowError as S;
        match e {
            S::Deploy(d) => d.into(),
            S::NotFound(m) => ApiError::NotFound(m),
            S::Invalid(m) => ApiError::BadRequest(m),
        }
    }
}

impl From<SilenceError> for ApiError {
    fn from(e: SilenceError) -> Self {
        match e {
            SilenceError::OverLimit(_) => ApiError::over_limit(e.to_string()),
            SilenceError::Invalid(_) => ApiError::BadRequest(e.to_string()),
        }
    }
}

/// A body that is not the JSON the endpoint takes: axum's status and
/// serde's reason, as JSON like every other error.
impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        ApiError::Rejected(e.status(), e.body_text())
    }
}
