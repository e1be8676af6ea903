//! Access control: an admin token, and viewer and publish tokens that are signed, scoped to a stream,
//! expiring and revocable.
//!
//! Viewer tokens are JWTs (RFC 7519) signed with HMAC-SHA256 by `jsonwebtoken`; the header names the key id
//! (`kid`), so the signing key can rotate. Claims: `jti` (the token id, 128 random bits), `stream` (a stream
//! name or `*`), `iat`, `exp`, and optional `label`, `max_sessions` and `publish`. The admin token is an opaque secret
//! (configured, read from `admin_token_file`, or generated once into `state_dir/auth/admin_token`), compared
//! in constant time. See [`store`] for what is kept on disk.
//!
//! Architecture invariant: a token is never logged, stored or put into an error message; its id is.

mod store;
pub mod turn;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

pub use store::{Issued, KeyInfo, Retired};

use crate::config::{AuthConfig, AuthMode};
use crate::ids::StreamScope;

/// Why a request's credentials were refused. Never carries the token.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AuthError {
    #[error("this needs an `Authorization: Bearer <token>` header")]
    Missing,
    #[error("the Authorization header uses another scheme; glasscast takes `Bearer <token>`")]
    WrongScheme,
    #[error("the Authorization header is malformed: {0}")]
    Malformed(&'static str),
    #[error("the token is not valid: {0}")]
    Invalid(String),
    #[error("the token expired")]
    Expired,
    #[error("the token was revoked")]
    Revoked,
    #[error("the token is for stream `{0}`, not this one")]
    WrongStream(String),
    #[error("this needs the admin token")]
    NotAdmin,
    #[error("this is a publish token: it publishes to POST /whip/{{stream}}, it does not watch")]
    PublishOnly,
    #[error("publishing needs a publish token (`glasscast token issue --publish`), not a viewer token")]
    NotPublish,
}

impl AuthError {
    /// A short name for metrics (`glasscast_auth_failures_total{reason}`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::WrongScheme => "wrong-scheme",
            Self::Malformed(_) => "malformed",
            Self::Invalid(_) => "invalid",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::WrongStream(_) => "wrong-stream",
            Self::NotAdmin => "not-admin",
            Self::PublishOnly => "publish-token",
            Self::NotPublish => "not-publish",
        }
    }
}

/// Who a request is, once its token checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Access control is disabled.
    Anyone,
    Admin,
    /// A signed token: a viewer's or a publisher's.
    Token(TokenGrant),
}

/// What a signed token does; neither kind does the other's job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Watches (WHEP, the player).
    View,
    /// Publishes (WHIP ingest to a `source = "whip"` stream).
    Publish,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::View => "viewer",
            Self::Publish => "publish",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub token_id: String,
    /// The signing key's id: when the key is retired, the grant is no longer good.
    pub kid: String,
    pub scope: StreamScope,
    pub label: Option<String>,
    /// Unix seconds.
    pub expires_at: u64,
    pub max_sessions: Option<u32>,
    pub kind: TokenKind,
}

impl Grant {
    /// When the token behind this grant expires (Unix seconds); `None` for the admin and for anyone.
    pub fn expires_at(&self) -> Option<u64> {
        match self {
            Self::Token(t) => Some(t.expires_at),
            Self::Admin | Self::Anyone => None,
        }
    }

    /// The token's id, if a signed token made this grant.
    pub fn token_id(&self) -> Option<&str> {
        match self {
            Grant::Token(t) => Some(&t.token_id),
            _ => None,
        }
    }

    /// Is `stream` in this grant's scope? (The admin and access control off: every stream; a token: its
    /// own stream, or every one for `*`.)
    pub fn covers(&self, stream: &str) -> bool {
        match self {
            Grant::Token(t) => t.scope.covers(stream),
            Grant::Admin | Grant::Anyone => true,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    jti: String,
    stream: String,
    iat: u64,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_sessions: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    publish: bool,
}

/// What to issue.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    pub scope: StreamScope,
    pub ttl: Duration,
    pub label: Option<String>,
    pub max_sessions: Option<u32>,
    pub kind: TokenKind,
}

/// Access control's handle. Cheap to clone.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    mode: AuthMode,
    /// The admin API takes requests without the admin token (`auth.open_admin_api` with `mode = "disabled"`).
    open_admin: bool,
    admin_digest: [u8; 32],
    keys: RwLock<store::Keys>,
    ledger: Mutex<store::Ledger>,
    dir: PathBuf,
}

pub use crate::host::now_s;

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Where the admin token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminTokenSource {
    Config,
    File(PathBuf),
    /// Generated on this start or an earlier one, kept here (0600).
    Generated(PathBuf),
}

impl Auth {
    /// Loads keys, the admin token and the ledger from `state_dir/auth/` (creating what is missing).
    pub fn load(cfg: &AuthConfig, state_dir: &Path) -> anyhow::Result<(Self, AdminTokenSource)> {
        let dir = state_dir.join("auth");
        crate::state::private_dir(&dir)?;
        let (admin, source) = match (&cfg.admin_token, &cfg.admin_token_file) {
            (Some(t), _) => (t.clone(), AdminTokenSource::Config),
            (None, Some(path)) => {
                let t = std::fs::read_to_string(path)
                    .with_context(|| format!("reading auth.admin_token_file {}", path.display()))?;
                (t.trim().to_owned(), AdminTokenSource::File(path.clone()))
            }
            (None, None) => {
                let path = dir.join("admin_token");
                if !path.exists() {
                    crate::state::write_atomic(&path, store::random_secret().as_bytes(), 0o600)?;
                }
                let t = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                (t.trim().to_owned(), AdminTokenSource::Generated(path))
            }
        };
        let min = crate::config::MIN_ADMIN_TOKEN;
        anyhow::ensure!(admin.len() >= min, "the admin token must be at least {min} characters");
        let keys = store::Keys::load_or_create(&dir)?;
        let mut ledger = store::Ledger::load(&dir)?;
        ledger.prune(now_s());
        let inner = Inner {
            mode: cfg.mode,
            open_admin: cfg.mode == AuthMode::Disabled && cfg.open_admin_api,
            admin_digest: digest(&admin),
            keys: RwLock::new(keys),
            ledger: Mutex::new(ledger),
            dir,
        };
        Ok((Self { inner: Arc::new(inner) }, source))
    }

    pub fn required(&self) -> bool {
        self.inner.mode == AuthMode::Required
    }

    /// The bearer token of an `Authorization` header value (`None`: no header).
    pub fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
        let value = header.ok_or(AuthError::Missing)?;
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::WrongScheme);
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Malformed("no token after `Bearer`"));
        }
        if !token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)) {
            return Err(AuthError::Malformed("the token has characters a bearer token cannot have"));
        }
        Ok(token)
    }

    fn is_admin(&self, token: &str) -> bool {
        bool::from(digest(token)[..].ct_eq(&self.inner.admin_digest[..]))
    }

    /// Checks a request's `Authorization` header; any valid token (admin or viewer, any stream) passes.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Grant, AuthError> {
        if !self.required() {
            return Ok(Grant::Anyone);
        }
        let token = Self::bearer(header)?;
        if self.is_admin(token) {
            return Ok(Grant::Admin);
        }
        self.verify_token(token).map(Grant::Token)
    }

    /// Like [`Auth::authenticate`], and the token must be a viewer token (or the admin's) covering `stream`.
    pub fn authorize_stream(&self, header: Option<&str>, stream: &str) -> Result<Grant, AuthError> {
        let grant = self.authenticate(header)?;
        match &grant {
            Grant::Token(t) if t.kind == TokenKind::Publish => Err(AuthError::PublishOnly),
            Grant::Token(t) if !t.scope.covers(stream) => Err(AuthError::WrongStream(t.scope.to_string())),
            _ => Ok(grant),
        }
    }

    /// Like [`Auth::authenticate`], and the token must be a publish token (or the admin's) covering `stream`.
    pub fn authorize_publish(&self, header: Option<&str>, stream: &str) -> Result<Grant, AuthError> {
        let grant = self.authenticate(header)?;
        match &grant {
            Grant::Token(t) if t.kind == TokenKind::View => Err(AuthError::NotPublish),
            Grant::Token(t) if !t.scope.covers(stream) => Err(AuthError::WrongStream(t.scope.to_string())),
            _ => Ok(grant),
        }
    }

    /// The admin token only, whatever the mode (watching without a token does not open the admin API),
    /// unless `auth.open_admin_api` opened it.
    pub fn authorize_admin(&self, header: Option<&str>) -> Result<(), AuthError> {
        if self.inner.open_admin {
            return Ok(());
        }
        let token = Self::bearer(header)?;
        if self.is_admin(token) {
            return Ok(());
        }
        self.verify_token(token).and(Err(AuthError::NotAdmin))
    }

    /// Whether `header` carries the admin token (constant time).
    pub fn is_admin_header(&self, header: Option<&str>) -> bool {
        Self::bearer(header).is_ok_and(|t| self.is_admin(t))
    }

    /// Whether the admin API is open to anyone (`auth.open_admin_api`).
    pub fn admin_open(&self) -> bool {
        self.inner.open_admin
    }

    fn verify_token(&self, token: &str) -> Result<TokenGrant, AuthError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid("not a glasscast token".into()))?;
        let kid = header.kid.ok_or_else(|| AuthError::Invalid("no key id".into()))?;
        let keys = self.inner.keys.read().expect("keys lock");
        let key = keys.get(&kid).ok_or_else(|| AuthError::Invalid("signed with an unknown key".into()))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iat", "jti"]);
        let data =
            jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(key), &validation).map_err(|e| match e
                .kind()
            {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                jsonwebtoken::errors::ErrorKind::InvalidSignature => AuthError::Invalid("bad signature".into()),
                _ => AuthError::Invalid("malformed claims".into()),
            })?;
        let c = data.claims;
        if self.is_revoked(&c.jti) {
            return Err(AuthError::Revoked);
        }
        let scope = StreamScope::parse(&c.stream).map_err(|_| AuthError::Invalid("malformed claims".into()))?;
        Ok(TokenGrant {
            token_id: c.jti,
            kid,
            scope,
            label: c.label,
            expires_at: c.exp,
            max_sessions: c.max_sessions,
            kind: if c.publish { TokenKind::Publish } else { TokenKind::View },
        })
    }

    /// Is `kid` still a signing key (not retired by [`Auth::rotate_key`])?
    pub fn knows_key(&self, kid: &str) -> bool {
        self.inner.keys.read().expect("keys lock").get(kid).is_some()
    }

    /// Makes a new signing key for new tokens (persisted before returning); returns its id. Tokens signed
    /// earlier keep working unless `retire`: then every older key is dropped, those tokens are refused and
    /// their sessions end at the session manager's next sweep.
    pub fn rotate_key(&self, retire: bool) -> anyhow::Result<String> {
        self.inner.keys.write().expect("keys lock").rotate(&self.inner.dir, retire, now_s())
    }

    /// Drops the older signing key `kid` (persisted before returning): tokens it signed are refused and their
    /// sessions end at the session manager's next sweep.
    pub fn retire_key(&self, kid: &str) -> anyhow::Result<Retired> {
        self.inner.keys.write().expect("keys lock").retire(&self.inner.dir, kid)
    }

    /// The signing keys kept (ids and ages, never the keys).
    pub fn keys(&self) -> Vec<KeyInfo> {
        self.inner.keys.read().expect("keys lock").list()
    }

    pub fn is_revoked(&self, token_id: &str) -> bool {
        self.inner.ledger.lock().expect("ledger lock").revoked.contains_key(token_id)
    }

    /// Issues a viewer token; records its claims (not the token) in the ledger. Returns the token.
    pub fn issue(&self, req: &IssueRequest) -> anyhow::Result<(String, Issued)> {
        let now = now_s();
        let issued = Issued {
            id: store::random_id(),
            stream: req.scope.clone(),
            label: req.label.clone(),
            issued_at: now,
            expires_at: now + req.ttl.as_secs().max(1),
            max_sessions: req.max_sessions,
            publish: req.kind == TokenKind::Publish,
        };
        let claims = Claims {
            jti: issued.id.clone(),
            stream: issued.stream.to_string(),
            iat: now,
            exp: issued.expires_at,
            label: issued.label.clone(),
            max_sessions: issued.max_sessions,
            publish: issued.publish,
        };
        let token = {
            let keys = self.inner.keys.read().expect("keys lock");
            let header = Header { kid: Some(keys.current.clone()), ..Header::new(Algorithm::HS256) };
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(keys.current_key()))
                .context("signing the token")?
        };
        let mut ledger = self.inner.ledger.lock().expect("ledger lock");
        ledger.prune(now);
        ledger.issued.insert(issued.id.clone(), issued.clone());
        ledger.save(&self.inner.dir)?;
        Ok((token, issued))
    }

    /// Issued tokens that have not expired, oldest first, and whether each is revoked.
    pub fn list(&self) -> Vec<(Issued, bool)> {
        let ledger = self.inner.ledger.lock().expect("ledger lock");
        let mut all: Vec<_> = ledger.issued.values().map(|t| (t.clone(), ledger.revoked.contains_key(&t.id))).collect();
        all.sort_by_key(|(t, _)| t.issued_at);
        all
    }

    /// Revokes a token by id (persisted before returning). `false` when no such token was issued.
    pub fn revoke(&self, token_id: &str) -> anyhow::Result<bool> {
        let mut ledger = self.inner.ledger.lock().expect("ledger lock");
        let Some(exp) = ledger.issued.get(token_id).map(|t| t.expires_at) else { return Ok(false) };
        ledger.revoked.insert(token_id.to_owned(), exp);
        ledger.save(&self.inner.dir)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(mode: AuthMode) -> (Auth, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = AuthConfig { mode, admin_token: Some("admin-secret-0123456789".into()), ..AuthConfig::default() };
        (Auth::load(&cfg, dir.path()).expect("auth").0, dir)
    }

    fn viewer(a: &Auth, stream: &str, ttl_s: u64) -> String {
        let req = IssueRequest {
            scope: StreamScope::parse(stream).expect("a scope"),
            ttl: Duration::from_secs(ttl_s),
            label: None,
            max_sessions: None,
            kind: TokenKind::View,
        };
        a.issue(&req).expect("issue").0
    }

    #[test]
    fn bearer_headers_are_parsed_strictly() {
        assert_eq!(Auth::bearer(None), Err(AuthError::Missing));
        assert_eq!(Auth::bearer(Some("Basic dXNlcjpwYXNz")), Err(AuthError::WrongScheme));
        assert!(matches!(Auth::bearer(Some("Bearer ")), Err(AuthError::Malformed(_))));
        assert!(matches!(Auth::bearer(Some("Bearer a b")), Err(AuthError::Malformed(_))));
        assert_eq!(Auth::bearer(Some("bearer abc.def")), Ok("abc.def"));
    }

    #[test]
    fn viewer_tokens_are_scoped_expire_and_revoke() {
        let (a, _d) = auth(AuthMode::Required);
        let t = viewer(&a, "main", 60);
        let h = format!("Bearer {t}");
        let Ok(Grant::Token(g)) = a.authorize_stream(Some(&h), "main") else { panic!("main") };
        assert_eq!(a.authorize_stream(Some(&h), "other"), Err(AuthError::WrongStream("main".into())));
        assert_eq!(a.authorize_admin(Some(&h)), Err(AuthError::NotAdmin));
        let any = format!("Bearer {}", viewer(&a, "*", 60));
        assert!(a.authorize_stream(Some(&any), "other").is_ok());
        assert!(a.revoke(&g.token_id).expect("revoke"));
        assert_eq!(a.authorize_stream(Some(&h), "main"), Err(AuthError::Revoked));
        assert!(!a.revoke("nope").expect("revoke"));
    }

    #[test]
    fn expired_forged_and_foreign_tokens_are_refused() {
        let (a, _d) = auth(AuthMode::Required);
        let (b, _e) = auth(AuthMode::Required);
        let foreign = format!("Bearer {}", viewer(&b, "main", 60));
        assert!(matches!(a.authenticate(Some(&foreign)), Err(AuthError::Invalid(_))));
        let t = viewer(&a, "main", 60);
        let (head, rest) = t.split_once('.').expect("jwt");
        let (_, sig) = rest.split_once('.').expect("jwt");
        // Same header and signature, other claims: the signature no longer matches.
        let forged_claims = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            format!(r#"{{"jti":"x","stream":"*","iat":1,"exp":{}}}"#, now_s() + 999),
        );
        let forged = format!("Bearer {head}.{forged_claims}.{sig}");
        assert_eq!(a.authenticate(Some(&forged)), Err(AuthError::Invalid("bad signature".into())));
        let signed = |stream: &str, exp: u64| {
            let claims = Claims {
                jti: "old".into(),
                stream: stream.into(),
                iat: 1,
                exp,
                label: None,
                max_sessions: None,
                publish: false,
            };
            let keys = a.inner.keys.read().expect("keys lock");
            let header = Header { kid: Some(keys.current.clone()), ..Header::new(Algorithm::HS256) };
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(keys.current_key())).expect("sign")
        };
        assert_eq!(a.authenticate(Some(&format!("Bearer {}", signed("main", 2)))), Err(AuthError::Expired));
        // Signed by us, but its scope is no stream name: refused, not matched as a string.
        let odd = signed("Main Stream", now_s() + 999);
        assert_eq!(a.authenticate(Some(&format!("Bearer {odd}"))), Err(AuthError::Invalid("malformed claims".into())));
        assert!(matches!(a.authenticate(Some("Bearer not-a-jwt")), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn rotated_keys_keep_old_tokens_until_retired() {
        let (a, _d) = auth(AuthMode::Required);
        let old = format!("Bearer {}", viewer(&a, "main", 60));
        let Ok(Grant::Token(g)) = a.authenticate(Some(&old)) else { panic!("valid") };
        let kid = a.rotate_key(false).expect("rotate");
        assert_ne!(kid, g.kid);
        let new = format!("Bearer {}", viewer(&a, "main", 60));
        let Ok(Grant::Token(n)) = a.authenticate(Some(&new)) else { panic!("valid") };
        assert_eq!(n.kid, kid, "new tokens use the new key");
        assert!(a.authenticate(Some(&old)).is_ok() && a.knows_key(&g.kid), "old tokens still verify");
        a.rotate_key(true).expect("retire");
        assert_eq!(a.authenticate(Some(&old)), Err(AuthError::Invalid("signed with an unknown key".into())));
        assert!(a.authenticate(Some(&new)).is_err() && !a.knows_key(&kid));
        assert_eq!(a.keys().len(), 1);
    }

    #[test]
    fn admin_token_and_disabled_mode() {
        let (a, _d) = auth(AuthMode::Required);
        assert_eq!(a.authenticate(Some("Bearer admin-secret-0123456789")), Ok(Grant::Admin));
        assert!(a.authorize_admin(Some("Bearer admin-secret-0123456789")).is_ok());
        assert!(a.authenticate(Some("Bearer admin-secret-012345678")).is_err());
        let (off, _e) = auth(AuthMode::Disabled);
        assert_eq!(off.authorize_stream(None, "main"), Ok(Grant::Anyone));
        // Watching without a token does not open the admin API.
        assert_eq!(off.authorize_admin(None), Err(AuthError::Missing));
        assert!(off.authorize_admin(Some("Bearer admin-secret-0123456789")).is_ok());
        assert!(off.authorize_admin(Some("Bearer admin-secret-012345678")).is_err());
    }

    #[test]
    fn open_admin_api_opens_it_only_with_auth_disabled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = Some("admin-secret-0123456789".to_owned());
        let open = AuthConfig {
            mode: AuthMode::Disabled,
            open_admin_api: true,
            admin_token: secret.clone(),
            ..AuthConfig::default()
        };
        let (a, _) = Auth::load(&open, dir.path()).expect("auth");
        assert!(a.admin_open() && a.authorize_admin(None).is_ok());
        let required = AuthConfig { mode: AuthMode::Required, ..open };
        let (b, _) = Auth::load(&required, dir.path()).expect("auth");
        assert!(!b.admin_open() && b.authorize_admin(None).is_err());
    }

    #[test]
    fn a_generated_admin_token_is_kept_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = AuthConfig { mode: AuthMode::Required, ..AuthConfig::default() };
        let (_, src) = Auth::load(&cfg, dir.path()).expect("auth");
        let AdminTokenSource::Generated(path) = src else { panic!("generated") };
        assert_eq!(std::fs::metadata(&path).expect("file").permissions().mode() & 0o777, 0o600);
        let first = std::fs::read_to_string(&path).expect("read");
        Auth::load(&cfg, dir.path()).expect("again");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), first, "reused, not regenerated");
    }
}
