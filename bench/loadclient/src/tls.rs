//! HTTPS certificate checks for a self-signed server: pin by SubjectPublicKeyInfo SHA-256, or accept any.
//!
//! The handshake signature is still verified against the presented certificate's key (rustls + ring),
//! so a pinned server must hold the pinned private key.

use std::sync::Arc;

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use sha2::{Digest, Sha256};

/// What to accept as the server's certificate.
#[derive(Debug, Clone)]
pub enum CertPolicy {
    /// Exactly the certificate whose SPKI hashes to this.
    Pin([u8; 32]),
    /// Any certificate (`--insecure`).
    Any,
}

impl CertPolicy {
    /// Parses `--spki-sha256` (standard base64 of 32 bytes).
    pub fn pin_from_base64(text: &str) -> anyhow::Result<Self> {
        let bytes = STANDARD.decode(text.trim()).context("--spki-sha256 is not standard base64")?;
        let Ok(pin) = <[u8; 32]>::try_from(bytes.as_slice()) else {
            bail!("--spki-sha256 must be the base64 of 32 bytes (a SHA-256), got {} bytes", bytes.len());
        };
        Ok(CertPolicy::Pin(pin))
    }
}

/// Base64 SHA-256 of a DER certificate's SubjectPublicKeyInfo.
pub fn spki_sha256(cert: &CertificateDer<'_>) -> Result<String, webpki::Error> {
    let ee = webpki::EndEntityCert::try_from(cert)?;
    let spki = ee.subject_public_key_info();
    Ok(STANDARD.encode(Sha256::digest(spki.as_ref())))
}

#[derive(Debug)]
struct PolicyVerifier {
    policy: CertPolicy,
    algs: WebPkiSupportedAlgorithms,
}

#[derive(Debug)]
struct PinMismatch(String);

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "server certificate SPKI SHA-256 is {}, not the pinned one", self.0)
    }
}

impl std::error::Error for PinMismatch {}

impl ServerCertVerifier for PolicyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.policy {
            CertPolicy::Any => Ok(ServerCertVerified::assertion()),
            CertPolicy::Pin(pin) => {
                let got = spki_sha256(end_entity)
                    .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
                if got == STANDARD.encode(pin) {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(PinMismatch(
                        got,
                    ))))))
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// A rustls client configuration that applies `policy`.
pub fn client_config(policy: CertPolicy) -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algs = provider.signature_verification_algorithms;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PolicyVerifier { policy, algs }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_parsing() {
        let b64 = STANDARD.encode([7u8; 32]);
        assert!(matches!(CertPolicy::pin_from_base64(&b64), Ok(CertPolicy::Pin(p)) if p == [7u8; 32]));
        assert!(CertPolicy::pin_from_base64("not base64!").is_err());
        assert!(CertPolicy::pin_from_base64(&STANDARD.encode([1u8; 20])).is_err());
    }
}
