//! What access control keeps on disk, in `state_dir/auth/`: signing keys, the generated admin token, the
//! tokens issued (their claims, never the tokens) and the revocation list. Every file is 0600 and written
//! to a temporary file, synced and renamed ([`crate::state::write_atomic`]): a crash leaves the old or the
//! new file, never half of one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::state::write_atomic;

/// HMAC-SHA256 keys by key id; new tokens are signed with `current`, any kept key verifies.
pub struct Keys {
    pub current: String,
    keys: BTreeMap<String, Vec<u8>>,
    /// key id -> unix seconds it was made (0: made by a version that did not record it).
    created: BTreeMap<String, u64>,
}

#[derive(Serialize, Deserialize)]
struct KeysFile {
    current: String,
    /// key id -> base64url key
    keys: BTreeMap<String, String>,
    #[serde(default)]
    created: BTreeMap<String, u64>,
}

/// What [`Keys::retire`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retired {
    Done,
    /// No key by that id.
    Unknown,
    /// It signs new tokens: rotate first.
    Current,
}

/// A signing key as listed (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct KeyInfo {
    pub kid: String,
    pub created_at: u64,
    pub current: bool,
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rng().fill_bytes(&mut b);
    b
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random secret for a token or key, base64url without padding (256 bits).
/// 256 random bits, base64url. Never starting with `-`, which a command line would take for an option
/// (`glasscast --admin-token -q...`): such a draw is made again.
pub fn random_secret() -> String {
    loop {
        let s = B64.encode(random_bytes::<32>());
        if !s.starts_with('-') {
            return s;
        }
    }
}

/// A token id: 128 random bits, 32 hex digits.
pub fn random_id() -> String {
    hex(&random_bytes::<16>())
}

impl Keys {
    /// Reads `keys.json`, or makes a first key and writes it.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join("keys.json");
        if path.exists() {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            let file: KeysFile = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a glasscast key file", path.display()))?;
            let mut keys = BTreeMap::new();
            for (kid, k) in file.keys {
                let key =
                    B64.decode(&k).with_context(|| format!("key `{kid}` in {} is not base64url", path.display()))?;
                keys.insert(kid, key);
            }
            anyhow::ensure!(keys.contains_key(&file.current), "{}: the current key is missing", path.display());
            return Ok(Self { current: file.current, keys, created: file.created });
        }
        let mut keys = Self { current: String::new(), keys: BTreeMap::new(), created: BTreeMap::new() };
        keys.rotate(dir, false, super::now_s())?;
        Ok(keys)
    }

    /// Makes a new current key and writes the file (atomically) before returning its id. With `retire`, every
    /// older key is dropped: tokens they signed stop verifying (their sessions end at the next sweep).
    pub fn rotate(&mut self, dir: &Path, retire: bool, now: u64) -> anyhow::Result<String> {
        let kid = loop {
            let kid = hex(&random_bytes::<4>());
            if !self.keys.contains_key(&kid) {
                break kid;
            }
        };
        let mut next = if retire { BTreeMap::new() } else { self.keys.clone() };
        next.insert(kid.clone(), random_bytes::<32>().to_vec());
        let mut created = self.created.clone();
        created.retain(|k, _| next.contains_key(k));
        created.insert(kid.clone(), now);
        let file = KeysFile {
            current: kid.clone(),
            keys: next.iter().map(|(k, v)| (k.clone(), B64.encode(v))).collect(),
            created: created.clone(),
        };
        write_atomic(&dir.join("keys.json"), &serde_json::to_vec_pretty(&file)?, 0o600)?;
        *self = Self { current: kid.clone(), keys: next, created };
        Ok(kid)
    }

    /// Drops the older key `kid` and writes the file (atomically): tokens it signed stop verifying. The
    /// current key cannot be retired (rotate first).
    pub fn retire(&mut self, dir: &Path, kid: &str) -> anyhow::Result<Retired> {
        if kid == self.current {
            return Ok(Retired::Current);
        }
        if !self.keys.contains_key(kid) {
            return Ok(Retired::Unknown);
        }
        let (mut keys, mut created) = (self.keys.clone(), self.created.clone());
        keys.remove(kid);
        created.remove(kid);
        let file = KeysFile {
            current: self.current.clone(),
            keys: keys.iter().map(|(k, v)| (k.clone(), B64.encode(v))).collect(),
            created: created.clone(),
        };
        write_atomic(&dir.join("keys.json"), &serde_json::to_vec_pretty(&file)?, 0o600)?;
        (self.keys, self.created) = (keys, created);
        Ok(Retired::Done)
    }

    /// The keys kept, oldest first.
    pub fn list(&self) -> Vec<KeyInfo> {
        let mut all: Vec<KeyInfo> = self
            .keys
            .keys()
            .map(|kid| KeyInfo {
                kid: kid.clone(),
                created_at: self.created.get(kid).copied().unwrap_or_default(),
                current: *kid == self.current,
            })
            .collect();
        all.sort_by_key(|k| (k.created_at, k.current));
        all
    }

    pub fn get(&self, kid: &str) -> Option<&[u8]> {
        self.keys.get(kid).map(Vec::as_slice)
    }

    pub fn current_key(&self) -> &[u8] {
        self.get(&self.current).expect("checked when loaded")
    }
}

/// A token as issued, without the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issued {
    pub id: String,
    pub stream: crate::ids::StreamScope,
    pub label: Option<String>,
    pub issued_at: u64,
    pub expires_at: u64,
    pub max_sessions: Option<u32>,
    /// A publish token (WHIP); older ledgers have none.
    #[serde(default)]
    pub publish: bool,
}

/// Issued tokens and revocations (token id -> its expiry, kept until then).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Ledger {
    pub issued: BTreeMap<String, Issued>,
    pub revoked: BTreeMap<String, u64>,
}

impl Ledger {
    fn path(dir: &Path) -> PathBuf {
        dir.join("tokens.json")
    }

    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = Self::path(dir);
        if !path.exists() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a glasscast token ledger", path.display()))
    }

    /// Drops what has expired (an expired token fails verification anyway).
    pub fn prune(&mut self, now: u64) {
        self.issued.retain(|_, t| t.expires_at > now);
        self.revoked.retain(|_, exp| *exp > now);
    }

    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        write_atomic(&Self::path(dir), &serde_json::to_vec_pretty(self)?, 0o600)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_generated_secret_never_looks_like_a_command_line_option() {
        // One in 64 draws starts with '-' before the redraw.
        assert!((0..2000).map(|_| random_secret()).all(|s| !s.starts_with('-') && s.len() == 43));
    }

    #[test]
    fn keys_are_made_once_private_and_reloaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Keys::load_or_create(dir.path()).expect("create");
        let mode = std::fs::metadata(dir.path().join("keys.json")).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = Keys::load_or_create(dir.path()).expect("reload");
        assert_eq!(a.current, b.current);
        assert_eq!(a.current_key(), b.current_key());
        assert_eq!(a.current_key().len(), 32);
    }

    #[test]
    fn rotation_keeps_or_retires_old_keys_and_persists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut k = Keys::load_or_create(dir.path()).expect("create");
        let first = k.current.clone();
        let now = crate::auth::now_s();
        let second = k.rotate(dir.path(), false, now + 100).expect("rotate");
        assert_ne!(first, second);
        assert!(k.get(&first).is_some(), "kept: tokens it signed still verify");
        let back = Keys::load_or_create(dir.path()).expect("reload");
        assert_eq!(back.current, second);
        assert_eq!(back.list().iter().map(|i| i.current).collect::<Vec<_>>(), vec![false, true]);
        let third = k.rotate(dir.path(), true, now + 200).expect("rotate and retire");
        assert!(k.get(&first).is_none() && k.get(&second).is_none());
        let back = Keys::load_or_create(dir.path()).expect("reload");
        assert_eq!(back.list(), vec![KeyInfo { kid: third.clone(), created_at: now + 200, current: true }]);
        let fourth = k.rotate(dir.path(), false, now + 300).expect("rotate");
        assert_eq!(k.retire(dir.path(), &fourth).expect("retire"), Retired::Current);
        assert_eq!(k.retire(dir.path(), "nope").expect("retire"), Retired::Unknown);
        assert_eq!(k.retire(dir.path(), &third).expect("retire"), Retired::Done);
        let back = Keys::load_or_create(dir.path()).expect("reload");
        assert_eq!(back.list(), vec![KeyInfo { kid: fourth, created_at: now + 300, current: true }]);
    }

    #[test]
    fn the_ledger_round_trips_and_prunes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut l = Ledger::default();
        let t = Issued {
            id: random_id(),
            stream: crate::ids::StreamScope::parse("main").expect("a stream name"),
            label: Some("tv".into()),
            issued_at: 10,
            expires_at: 100,
            max_sessions: None,
            publish: false,
        };
        l.issued.insert(t.id.clone(), t.clone());
        l.revoked.insert("x".into(), 50);
        l.save(dir.path()).expect("save");
        let mut back = Ledger::load(dir.path()).expect("load");
        assert_eq!(back.issued.get(&t.id), Some(&t));
        back.prune(60);
        assert!(back.revoked.is_empty() && back.issued.len() == 1);
    }
}
