//! The DTLS certificate every viewer's webrtcbin uses: ECDSA P-256, self-signed, made once per process
//! (rcgen). GStreamer's own default is RSA-2048: slower to sign with in each handshake, and refused by
//! ECDSA-only WebRTC stacks (str0m 0.25's DTLS, for one). Browsers use ECDSA P-256 too.
//!
//! Each viewer's DTLS decoder gets it as webrtcbin adds the element, and the answer's `a=fingerprint` is
//! restated as this certificate's (see [`restate_fingerprint`]).

use std::sync::OnceLock;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_sdp as gst_sdp;
use sha2::{Digest, Sha256};

pub struct DtlsCertificate {
    /// Certificate and PKCS#8 private key, PEM, as GStreamer's DTLS elements take them.
    pub pem: String,
    /// `sha-256` fingerprint of the certificate, `AA:BB:...` as in SDP.
    pub fingerprint: String,
    /// The certificate and its PKCS#8 private key, DER, as str0m takes them (the forwarding transport).
    pub der: Vec<u8>,
    pub key_der: Vec<u8>,
}

fn generate() -> Result<DtlsCertificate, rcgen::Error> {
    let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(vec!["glasscast".to_owned()])?;
    let fingerprint = Sha256::digest(cert.der()).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
    Ok(DtlsCertificate {
        pem: format!("{}{}", cert.pem(), signing_key.serialize_pem()),
        fingerprint,
        der: cert.der().to_vec(),
        key_der: signing_key.serialize_der(),
    })
}

/// The process's certificate; `None` if it could not be made (webrtcbin's own default is used then).
pub fn certificate() -> Option<&'static DtlsCertificate> {
    static CERT: OnceLock<Option<DtlsCertificate>> = OnceLock::new();
    CERT.get_or_init(|| match generate() {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "could not make an ECDSA DTLS certificate; using GStreamer's RSA default");
            None
        }
    })
    .as_ref()
}

/// Makes every DTLS decoder `webrtcbin` creates use our certificate, as the element is added and before it
/// starts: the DTLS encoder looks up the decoder's connection when it starts, so both then use ours. Connect
/// before any sink pad is requested. The handler holds no reference to the webrtcbin; the caller disconnects
/// it on removal. `None` when there is no certificate of ours (GStreamer's RSA default is used then).
pub fn attach(webrtcbin: &gst::Element) -> Option<glib::SignalHandlerId> {
    let cert = certificate()?;
    Some(webrtcbin.connect("deep-element-added", false, move |args| {
        if let Some(element) = args.get(2).and_then(|v| v.get::<gst::Element>().ok())
            && element.factory().is_some_and(|f| f.name() == "dtlssrtpdec")
        {
            element.set_property("pem", &cert.pem);
        }
        None
    }))
}

/// States our certificate's fingerprint in an answer webrtcbin made with it (see [`attach`]). webrtcbin 1.22 hashes
/// the whole PEM the DTLS element holds, private key included, when that PEM was given to it (for its own
/// generated certificate it holds the certificate alone), so its fingerprint would not match the certificate
/// the peer sees in the handshake and browsers would refuse the connection.
pub fn restate_fingerprint(answer: &mut gst_sdp::SDPMessageRef) {
    let Some(cert) = certificate() else { return };
    let value = format!("sha-256 {}", cert.fingerprint);
    for i in 0..answer.attributes_len() {
        if answer.attribute(i).is_some_and(|a| a.key() == "fingerprint") {
            let _ = answer.replace_attribute(i, gst_sdp::SDPAttribute::new("fingerprint", Some(&value)));
        }
    }
    for media in answer.medias_mut() {
        for i in 0..media.attributes_len() {
            if media.attribute(i).is_some_and(|a| a.key() == "fingerprint") {
                let _ = media.replace_attribute(i, gst_sdp::SDPAttribute::new("fingerprint", Some(&value)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_certificate_is_ecdsa_with_an_sdp_fingerprint() {
        let cert = super::certificate().expect("rcgen makes a certificate");
        assert!(cert.pem.contains("BEGIN CERTIFICATE") && cert.pem.contains("BEGIN PRIVATE KEY"));
        let key = rcgen::KeyPair::from_pem(&cert.pem[cert.pem.find("-----BEGIN PRIVATE KEY").expect("key")..])
            .expect("the key parses");
        assert!(key.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256));
        assert_eq!(cert.fingerprint.len(), 32 * 3 - 1);
        assert!(std::ptr::eq(cert, super::certificate().expect("same")), "made once per process");
    }
}
