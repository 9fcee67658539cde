//! The identity store: users (argon2id password hashes) and API tokens
//! (SHA-256 digests of 256-bit random secrets, with a name, an expiry and
//! an owner), in `DATA/auth.json`. Every change is written to a temporary
//! file, synced and renamed over the old one, so a crash mid-write leaves
//! the old or the new store, never half of one; changes take a lock on
//! `DATA/auth.lock` so the CLI and a running server do not overwrite each
//! other's. The server re-reads the file when it changes, so
//! `weir user add` takes effect without a restart.

use super::{secret, Principal, Role, Scope};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The store's file name in the data folder.
pub const FILE: &str = "auth.json";
const LOCK: &str = "auth.lock";
/// Where a first start under `--log-format json` leaves the admin password.
pub const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";
/// Tokens read `weir_<id>_<secret>`.
const TOKEN_PREFIX: &str = "weir_";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the identity store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the identity store {path} is not valid: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub name: String,
    /// argon2id, PHC string format.
    pub password_hash: String,
    pub role: Role,
    #[serde(default)]
    pub scope: Scope,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Token {
    /// Public part, shown in lists and used to revoke.
    pub id: String,
    pub name: String,
    /// SHA-256 of the secret part, hex.
    pub digest: String,
    pub role: Role,
    #[serde(default)]
    pub scope: Scope,
    /// Who created it.
    pub created_by: String,
    pub created_at: String,
    /// RFC 3339; none = never.
    pub expires_at: Option<String>,
}

impl Token {
    pub fn expired(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.expires_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| t <= now)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Contents {
    version: u32,
    users: Vec<User>,
    tokens: Vec<Token>,
}

/// A user as lists show it (no hash).
#[derive(Debug, Clone, Serialize)]
pub struct UserInfo {
    pub name: String,
    pub role: Role,
    pub scope: Scope,
    pub created_at: String,
}

/// A token as lists show it (no digest).
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub scope: Scope,
    pub created_by: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub expired: bool,
}

/// What a new token is.
pub struct NewToken {
    pub name: String,
    pub role: Role,
    pub scope: Scope,
    pub ttl: Option<std::time::Duration>,
    pub created_by: String,
}

/// The store of one data folder; cheap to clone.
#[derive(Clone)]
pub struct AuthStore {
    path: PathBuf,
    cache: Arc<Mutex<(Option<Stamp>, Arc<Contents>)>>,
}

/// What tells a changed file: modification time and length.
type Stamp = (SystemTime, u64);

fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl AuthStore {
    pub fn open(data_dir: &Path) -> AuthStore {
        AuthStore {
            path: data_dir.join(FILE),
            cache: Arc::new(Mutex::new((None, Arc::new(Contents::default())))),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// The contents, read again when the file changed.
    fn current(&self) -> Result<Arc<Contents>, StoreError> {
        let stamp = match std::fs::metadata(&self.path) {
            Ok(m) => Some((m.modified().map_err(|e| self.io(e))?, m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(self.io(e)),
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.0 != stamp || stamp.is_none() {
            let contents = self.read()?;
            *cache = (stamp, Arc::new(contents));
        }
        Ok(cache.1.clone())
    }

    fn read(&self) -> Result<Contents, StoreError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                path: self.path.clone(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Contents {
                version: 1,
                ..Contents::default()
            }),
            Err(e) => Err(self.io(e)),
        }
    }

    /// Applies `change` to the contents on disk under the lock and writes
    /// the result atomically.
    fn update<T>(
        &self,
        change: impl FnOnce(&mut Contents) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK))
            .map_err(|e| self.io(e))?;
        lock.lock().map_err(|e| self.io(e))?;
        let mut contents = self.read()?;
        contents.version = 1;
        let out = change(&mut contents)?;
        let text = serde_json::to_vec_pretty(&contents).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        write_atomically(&self.path, &text).map_err(|e| self.io(e))?;
        drop(lock);
        // Read back on the next use.
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).0 = None;
        Ok(out)
    }

    pub fn has_users(&self) -> Result<bool, StoreError> {
        Ok(!self.current()?.users.is_empty())
    }

    pub fn users(&self) -> Result<Vec<UserInfo>, StoreError> {
        Ok(self
            .current()?
            .users
            .iter()
            .map(|u| UserInfo {
                name: u.name.clone(),
                role: u.role,
                scope: u.scope.clone(),
                created_at: u.created_at.clone(),
            })
            .collect())
    }

    pub fn add_user(
        &self,
        name: &str,
        password: &str,
        role: Role,
        scope: Scope,
    ) -> Result<(), StoreError> {
        check_name(name)?;
        check_password(password)?;
        let hash = secret::hash_password(password).map_err(StoreError::Invalid)?;
        self.update(|c| {
            if c.users.iter().any(|u| u.name == name) {
                return Err(StoreError::Conflict(format!(
                    "a user `{name}` exists already"
                )));
            }
            c.users.push(User {
                name: name.to_string(),
                password_hash: hash,
                role,
                scope,
                created_at: now_text(),
            });
            Ok(())
        })
    }

    /// Removes a user and the tokens it created.
    pub fn remove_user(&self, name: &str) -> Result<(), StoreError> {
        self.update(|c| {
            let before = c.users.len();
            c.users.retain(|u| u.name != name);
            if c.users.len() == before {
                return Err(StoreError::NotFound(format!("no user `{name}`")));
            }
            c.tokens.retain(|t| t.created_by != name);
            Ok(())
        })
    }

    pub fn set_password(&self, name: &str, password: &str) -> Result<(), StoreError> {
        check_password(password)?;
        let hash = secret::hash_password(password).map_err(StoreError::Invalid)?;
        self.update(|c| match c.users.iter_mut().find(|u| u.name == name) {
            Some(u) => {
                u.password_hash = hash;
                Ok(())
            }
            None => Err(StoreError::NotFound(format!("no user `{name}`"))),
        })
    }

    /// The user, if the password is right. Takes as long for a user that
    /// does not exist (a decoy hash is checked).
    pub fn login(&self, name: &str, password: &str) -> Result<Option<Principal>, StoreError> {
        let contents = self.current()?;
        let user = contents.users.iter().find(|u| u.name == name);
        let hash = user.map_or(secret::decoy_hash(), |u| u.password_hash.as_str());
        let ok = secret::verify_password(password, hash);
        Ok(user.filter(|_| ok).map(|u| Principal {
            name: u.name.clone(),
            role: u.role,
            scope: u.scope.clone(),
            csrf: None,
        }))
    }

    /// The user's current role and scope (sessions check it on every
    /// request, so a removed user's session ends).
    pub fn user(&self, name: &str) -> Result<Option<Principal>, StoreError> {
        Ok(self
            .current()?
            .users
            .iter()
            .find(|u| u.name == name)
            .map(|u| Principal {
                name: u.name.clone(),
                role: u.role,
                scope: u.scope.clone(),
                csrf: None,
            }))
    }

    /// Creates a token; returns its full text (shown once) and its info.
    pub fn create_token(&self, new: NewToken) -> Result<(String, TokenInfo), StoreError> {
        check_name(&new.name)?;
        let id = secret::random_hex(6);
        let secret_part = secret::random_hex(32);
        let text = format!("{TOKEN_PREFIX}{id}_{secret_part}");
        let expires_at = match new.ttl {
            Some(ttl) => {
                let ttl = chrono::Duration::from_std(ttl)
                    .map_err(|_| StoreError::Invalid("the expiry is too far".into()))?;
                Some((chrono::Utc::now() + ttl).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            }
            None => None,
        };
        let token = Token {
            id,
            name: new.name,
            digest: secret::digest(&secret_part),
            role: new.role,
            scope: new.scope,
            created_by: new.created_by,
            created_at: now_text(),
            expires_at,
        };
        let info = token_info(&token);
        self.update(|c| {
            if c.tokens.iter().any(|t| t.name == token.name) {
                return Err(StoreError::Conflict(format!(
                    "a token named `{}` exists already",
                    token.name
                )));
            }
            c.tokens.push(token);
            Ok(())
        })?;
        Ok((text, info))
    }

    pub fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        Ok(self.current()?.tokens.iter().map(token_info).collect())
    }

    /// Revokes a token by id or name.
    pub fn revoke_token(&self, which: &str) -> Result<(), StoreError> {
        self.update(|c| {
            let before = c.tokens.len();
            c.tokens.retain(|t| t.id != which && t.name != which);
            if c.tokens.len() == before {
                Err(StoreError::NotFound(format!("no token `{which}`")))
            } else {
                Ok(())
            }
        })
    }

    /// Who a bearer token is; none when it is unknown, revoked or expired.
    pub fn authenticate_token(&self, text: &str) -> Result<Option<Principal>, StoreError> {
        let Some((id, secret_part)) = text
            .strip_prefix(TOKEN_PREFIX)
            .and_then(|rest| rest.split_once('_'))
        else {
            return Ok(None);
        };
        let contents = self.current()?;
        let Some(t) = contents.tokens.iter().find(|t| t.id == id) else {
            return Ok(None);
        };
        if !secret::same(&secret::digest(secret_part), &t.digest) || t.expired(chrono::Utc::now()) {
            return Ok(None);
        }
        Ok(Some(Principal {
            name: format!("token:{}", t.name),
            role: t.role,
            scope: t.scope.clone(),
            csrf: None,
        }))
    }
}

/// `http` sources under `weir serve` take events from bearer tokens whose
/// role may ingest.
impl weir_connectors::sources::http::IngestAuth for AuthStore {
    fn allows(&self, authorization: Option<&str>) -> bool {
        authorization
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|t| self.authenticate_token(t.trim()).ok().flatten())
            .is_some_and(|p| p.role.allows(super::Access::Ingest))
    }
}

fn token_info(t: &Token) -> TokenInfo {
    TokenInfo {
        id: t.id.clone(),
        name: t.name.clone(),
        role: t.role,
        scope: t.scope.clone(),
        created_by: t.created_by.clone(),
        created_at: t.created_at.clone(),
        expires_at: t.expires_at.clone(),
        expired: t.expired(chrono::Utc::now()),
    }
}

fn check_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "`{name}` is not a valid name: use 1 to 64 letters, digits, '-', '_', '.' or '@'"
        )))
    }
}

/// The least a password must be.
pub const MIN_PASSWORD: usize = 12;

fn check_password(password: &str) -> Result<(), StoreError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(StoreError::Invalid(format!(
            "a password needs at least {MIN_PASSWORD} characters"
        )));
    }
    if password.len() > 1024 {
        return Err(StoreError::Invalid(
            "a password is at most 1024 bytes".into(),
        ));
    }
    Ok(())
}

/// Writes `bytes` to `path` through a synced temporary file and a rename,
/// readable by the owner only.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("json.tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).write(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_tokens_and_the_file_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = AuthStore::open(dir.path());
        assert!(!store.has_users().unwrap());
        store
            .add_user("ana", "a long password", Role::Editor, Scope::everything())
            .unwrap();
        assert!(matches!(
            store.add_user("ana", "a long password", Role::Viewer, Scope::everything()),
            Err(StoreError::Conflict(_))
        ));
        assert!(store
            .add_user("bo", "short", Role::Viewer, Scope::everything())
            .is_err());
        let (token, info) = store
            .create_token(NewToken {
                name: "ci".into(),
                role: Role::Viewer,
                scope: Scope::parse("service=\"checkout\"").unwrap(),
                ttl: None,
                created_by: "ana".into(),
            })
            .unwrap();
        let file = std::fs::read_to_string(store.path()).unwrap();
        assert!(!file.contains("a long password"));
        assert!(!file.contains(token.rsplit('_').next().unwrap()));
        let again = AuthStore::open(dir.path());
        let who = again.authenticate_token(&token).unwrap().unwrap();
        assert_eq!((who.name.as_str(), who.role), ("token:ci", Role::Viewer));
        assert_eq!(who.scope.to_string(), "service=\"checkout\"");
        assert_eq!(
            again.login("ana", "a long password").unwrap().unwrap().role,
            Role::Editor
        );
        assert!(again.login("ana", "a long passwore").unwrap().is_none());
        assert!(again.login("nobody", "a long password").unwrap().is_none());
        // A token with its secret changed, and one revoked.
        let forged = format!("{}0", &token[..token.len() - 1]);
        assert!(again.authenticate_token(&forged).unwrap().is_none() || token.ends_with('0'));
        again.revoke_token(&info.id).unwrap();
        assert!(store.authenticate_token(&token).unwrap().is_none());
        assert!(matches!(
            again.revoke_token(&info.id),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn expired_tokens_fail() {
        let dir = tempfile::tempdir().unwrap();
        let store = AuthStore::open(dir.path());
        let (token, _) = store
            .create_token(NewToken {
                name: "short".into(),
                role: Role::Admin,
                scope: Scope::everything(),
                ttl: Some(std::time::Duration::from_secs(1)),
                created_by: "test".into(),
            })
            .unwrap();
        assert!(store.authenticate_token(&token).unwrap().is_some());
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert!(store.authenticate_token(&token).unwrap().is_none());
    }
}
