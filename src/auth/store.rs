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

/// HMAC-SHA256 keys by key id; new tokens are signed with `current`.
pub struct Keys {
    pub current: String,
    keys: BTreeMap<String, Vec<u8>>,
}

#[derive(Serialize, Deserialize)]
struct KeysFile {
    current: String,
    /// key id -> base64url key
    keys: BTreeMap<String, String>,
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
pub fn random_secret() -> String {
    B64.encode(random_bytes::<32>())
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
            return Ok(Self { current: file.current, keys });
        }
        let kid = hex(&random_bytes::<4>());
        let key = random_bytes::<32>().to_vec();
        let file = KeysFile { current: kid.clone(), keys: BTreeMap::from([(kid.clone(), B64.encode(&key))]) };
        write_atomic(&path, &serde_json::to_vec_pretty(&file)?, 0o600)?;
        Ok(Self { current: kid.clone(), keys: BTreeMap::from([(kid, key)]) })
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
    pub stream: String,
    pub label: Option<String>,
    pub issued_at: u64,
    pub expires_at: u64,
    pub max_sessions: Option<u32>,
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
    fn the_ledger_round_trips_and_prunes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut l = Ledger::default();
        let t = Issued {
            id: random_id(),
            stream: "main".into(),
            label: Some("tv".into()),
            issued_at: 10,
            expires_at: 100,
            max_sessions: None,
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
