//! Logging in and out, and (for admins) users and tokens.
//!
//! | method | path | access | |
//! |---|---|---|---|
//! | POST | /api/v1/login | open | `{"user", "password"}` → 200 `{"user", "role", "scope", "csrf_token"}` and an HttpOnly, SameSite=Strict session cookie; 401 for a wrong name or password alike; 429 after too many failures |
//! | POST | /api/v1/logout | any | ends the session, clears the cookie |
//! | GET | /api/v1/session | any | `{"user", "role", "scope", "csrf_token"}` |
//! | GET | /api/v1/users | admin | the users (no hashes) |
//! | POST | /api/v1/users | admin | `{"name", "password", "role", "scope"?}` → 201 |
//! | DELETE | /api/v1/users/{name} | admin | 204 (its tokens go too) |
//! | PUT | /api/v1/users/{name}/password | admin | `{"password"}` → 204 |
//! | GET | /api/v1/tokens | admin | the tokens (no secrets) |
//! | POST | /api/v1/tokens | admin | `{"name", "role", "scope"?, "expires_in"?}` → 201 with `token`, shown this once |
//! | DELETE | /api/v1/tokens/{id} | admin | revokes it (by id or name); 204 |

use super::guard::{cookie, Body, Routes};
use super::{ip, ApiError, AppState, Peer};
use crate::auth::session::{COOKIE, SESSION_TTL};
use crate::auth::store::{NewToken, StoreError};
use crate::auth::{Access, Principal, Role, Scope};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

pub fn routes() -> Routes {
    use Access::*;
    Routes::new()
        .add(Method::POST, "/api/v1/login", Open, Body::Json, post(login))
        .add(
            Method::POST,
            "/api/v1/logout",
            Authenticated,
            Body::None,
            post(logout),
        )
        .add(
            Method::GET,
            "/api/v1/session",
            Authenticated,
            Body::None,
            get(session),
        )
        .add(
            Method::GET,
            "/api/v1/users",
            Admin,
            Body::None,
            get(list_users),
        )
        .add(
            Method::POST,
            "/api/v1/users",
            Admin,
            Body::Json,
            post(add_user),
        )
        .add(
            Method::DELETE,
            "/api/v1/users/{name}",
            Admin,
            Body::None,
            delete(remove_user),
        )
        .add(
            Method::PUT,
            "/api/v1/users/{name}/password",
            Admin,
            Body::Json,
            put(set_password),
        )
        .add(
            Method::GET,
            "/api/v1/tokens",
            Admin,
            Body::None,
            get(list_tokens),
        )
        .add(
            Method::POST,
            "/api/v1/tokens",
            Admin,
            Body::Json,
            post(create_token),
        )
        .add(
            Method::DELETE,
            "/api/v1/tokens/{id}",
            Admin,
            Body::None,
            delete(revoke_token),
        )
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(m) => ApiError::BadRequest(m),
            StoreError::NotFound(m) => ApiError::NotFound(m),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Io { .. } | StoreError::Corrupt { .. } => ApiError::Internal(e.to_string()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    user: String,
    password: String,
}

async fn login(
    State(app): State<AppState>,
    peer: Peer,
    req: Result<Json<Login>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = req?;
    let addr = ip(&peer).unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let auth = app.auth.clone();
    if let Some(wait) = auth.limiter.check(&req.user, addr) {
        auth.audit(
            &req.user,
            Some(addr),
            "login",
            &req.user,
            "limited",
            json!(null),
        );
        return Err(ApiError::TooManyRequests {
            message: "too many failed logins; wait before trying again".into(),
            retry_after: wait.as_secs().max(1),
        });
    }
    let store = auth.store.clone();
    let user = req.user.clone();
    // argon2 is slow on purpose: off the async threads.
    let found = tokio::task::spawn_blocking(move || store.login(&user, &req.password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    let Some(who) = found else {
        auth.limiter.failed(&req.user, addr);
        auth.audit(
            &req.user,
            Some(addr),
            "login",
            &req.user,
            "failed",
            json!(null),
        );
        return Err(ApiError::Unauthorized("wrong user name or password".into()));
    };
    auth.limiter.succeeded(&who.name);
    auth.audit(&who.name, Some(addr), "login", &who.name, "ok", json!(null));
    let (id, csrf) = auth.sessions.open(&who.name);
    let secure = if auth.tls { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_TTL.as_secs()
    );
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({
            "user": who.name,
            "role": who.role,
            "scope": who.scope,
            "csrf_token": csrf,
        })),
    )
        .into_response())
}

async fn logout(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    if let Some(id) = cookie(&headers, COOKIE) {
        app.auth.sessions.close(id);
    }
    app.auth
        .audit(&who.name, ip(&peer), "logout", &who.name, "ok", json!(null));
    (
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        )],
    )
        .into_response()
}

async fn session(Extension(who): Extension<Principal>) -> Response {
    Json(json!({
        "user": who.name,
        "role": who.role,
        "scope": who.scope,
        "csrf_token": who.csrf,
    }))
    .into_response()
}

async fn list_users(State(app): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(json!({ "users": app.auth.store.users()? })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    name: String,
    password: String,
    role: Role,
    #[serde(default)]
    scope: Option<String>,
}

fn scope_of(text: Option<&str>) -> Result<Scope, ApiError> {
    Scope::parse(text.unwrap_or("")).map_err(ApiError::BadRequest)
}

async fn add_user(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    peer: Peer,
    req: Result<Json<NewUser>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = req?;
    let scope = scope_of(req.scope.as_deref())?;
    let store = app.auth.store.clone();
    let (name, role) = (req.name.clone(), req.role);
    let result = tokio::task::spawn_blocking(move || {
        store.add_user(&req.name, &req.password, req.role, scope)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let outcome = if result.is_ok() { "ok" } else { "failed" };
    app.auth.audit(
        &who.name,
        ip(&peer),
        "user.add",
        &name,
        outcome,
        json!({ "role": role }),
    );
    result?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "name": name, "role": role })),
    )
        .into_response())
}

async fn remove_user(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    peer: Peer,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let result = app.auth.store.remove_user(&name);
    app.audited(&who, &peer, "user.remove", &name, result)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    password: String,
}

async fn set_password(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    peer: Peer,
    Path(name): Path<String>,
    req: Result<Json<NewPassword>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(req) = req?;
    let store = app.auth.store.clone();
    let target = name.clone();
    let result = tokio::task::spawn_blocking(move || store.set_password(&target, &req.password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    app.audited(&who, &peer, "user.passwd", &name, result)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_tokens(State(app): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(json!({ "tokens": app.auth.store.tokens()? })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    name: String,
    role: Role,
    #[serde(default)]
    scope: Option<String>,
    /// `30d`, `12h`; none = never expires.
    #[serde(default)]
    expires_in: Option<String>,
}

async fn create_token(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    peer: Peer,
    req: Result<Json<TokenRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = req?;
    let ttl = req
        .expires_in
        .as_deref()
        .map(|t| {
            humantime::parse_duration(t).map_err(|e| {
                ApiError::BadRequest(format!("expires_in `{t}`: {e} (write e.g. 30d)"))
            })
        })
        .transpose()?;
    let result = app.auth.store.create_token(NewToken {
        name: req.name.clone(),
        role: req.role,
        scope: scope_of(req.scope.as_deref())?,
        ttl,
        created_by: who.name.clone(),
    });
    let outcome = if result.is_ok() { "ok" } else { "failed" };
    app.auth.audit(
        &who.name,
        ip(&peer),
        "token.create",
        &req.name,
        outcome,
        json!({ "role": req.role }),
    );
    let (token, info) = result?;
    let mut body = json!(info);
    body["token"] = json!(token);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn revoke_token(
    State(app): State<AppState>,
    Extension(who): Extension<Principal>,
    peer: Peer,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let result = app.auth.store.revoke_token(&id);
    app.audited(&who, &peer, "token.revoke", &id, result)?;
    Ok(StatusCode::NO_CONTENT)
}
