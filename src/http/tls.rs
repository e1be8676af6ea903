//! TLS for the HTTPS listener: a configured certificate/key pair as given, or a self-signed certificate
//! created once in the state directory (rcgen) and reused after.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::config::ServerConfig;

pub struct TlsMaterial {
    pub config: Arc<rustls::ServerConfig>,
    pub cert_path: PathBuf,
    /// SHA-256 of the leaf certificate, `AB:CD:...`: what a browser shows and what users compare.
    pub fingerprint: String,
    /// base64 SHA-256 of the leaf's SubjectPublicKeyInfo (Chromium's `--ignore-certificate-errors-spki-list`).
    pub spki_sha256: Option<String>,
    pub self_signed: bool,
}

pub use crate::state::write_atomic;

pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// Names the self-signed certificate is valid for: localhost, this host's name and its addresses.
fn subject_names() -> Vec<String> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let h = h.trim();
        if !h.is_empty() {
            names.push(h.to_owned());
            names.push(format!("{h}.local"));
        }
    }
    for iface in if_addrs::get_if_addrs().unwrap_or_default() {
        let ip = iface.ip().to_string();
        if !names.contains(&ip) {
            names.push(ip);
        }
    }
    names
}

fn create_self_signed(cert_path: &Path, key_path: &Path) -> anyhow::Result<()> {
    let dir = cert_path.parent().context("cert path has a parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(subject_names()).context("generating a self-signed certificate")?;
    // Key first: a crash between the two leaves no certificate, so the pair is made again next start.
    write_atomic(key_path, signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_atomic(cert_path, cert.pem().as_bytes(), 0o600)?;
    tracing::info!(cert = %cert_path.display(), "created a self-signed TLS certificate");
    Ok(())
}

pub fn load_or_create(cfg: &ServerConfig) -> anyhow::Result<TlsMaterial> {
    let (cert_path, key_path, self_signed) = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone(), false),
        _ => {
            let dir = cfg.state_dir.join("tls");
            let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
            if !(c.exists() && k.exists()) {
                create_self_signed(&c, &k)?;
            }
            (c, k, true)
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .with_context(|| format!("reading certificate {}", cert_path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing certificate {}", cert_path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no PEM certificate", cert_path.display());
    }
    let key_pem = std::fs::read(&key_path).with_context(|| format!("reading key {}", key_path.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).with_context(|| format!("parsing key {}", key_path.display()))?;
    let spki_sha256 = std::str::from_utf8(&key_pem).ok().and_then(|pem| rcgen::KeyPair::from_pem(pem).ok()).map(|kp| {
        base64::engine::general_purpose::STANDARD
            .encode(Sha256::digest(rcgen::PublicKeyData::subject_public_key_info(&kp)))
    });
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs.clone(), key)
        .context("certificate and key do not form a usable pair")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsMaterial {
        config: Arc::new(config),
        cert_path,
        fingerprint: fingerprint(&certs[0]),
        spki_sha256,
        self_signed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_created_once_and_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = ServerConfig { state_dir: dir.path().to_path_buf(), ..ServerConfig::default() };
        let first = load_or_create(&cfg).expect("created");
        assert!(first.self_signed);
        assert_eq!(first.fingerprint.len(), 32 * 3 - 1);
        assert!(first.spki_sha256.is_some());
        let key = dir.path().join("tls/key.pem");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).expect("key").permissions().mode() & 0o777, 0o600);
        let second = load_or_create(&cfg).expect("reused");
        assert_eq!(first.fingerprint, second.fingerprint);
    }

    #[test]
    fn configured_pair_is_used_as_given_and_bad_files_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let gen_cfg = ServerConfig { state_dir: dir.path().join("gen"), ..ServerConfig::default() };
        let made = load_or_create(&gen_cfg).expect("created");
        let cfg = ServerConfig {
            tls_cert: Some(made.cert_path.clone()),
            tls_key: Some(dir.path().join("gen/tls/key.pem")),
            ..ServerConfig::default()
        };
        let used = load_or_create(&cfg).expect("configured pair");
        assert!(!used.self_signed);
        assert_eq!(used.fingerprint, made.fingerprint);

        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, "not a certificate").expect("write");
        let cfg = ServerConfig { tls_cert: Some(bad.clone()), tls_key: Some(bad), ..ServerConfig::default() };
        let err = format!("{:#}", load_or_create(&cfg).err().expect("rejected"));
        assert!(err.contains("bad.pem"), "{err}");
    }
}
