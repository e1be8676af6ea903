//! str0m's crypto provider: its OpenSSL backend, with HMAC-SHA1 done by RustCrypto's `hmac` + `sha1`.
//!
//! str0m-openssl builds a fresh OpenSSL `PKey` + `Signer` for every HMAC, i.e. for every SRTP packet
//! (AES_CM_128_HMAC_SHA1_80 authenticates each one); under OpenSSL 3 that setup costs more than the rest of
//! the packet's processing together (about 40% of this client's CPU in a profile). RustCrypto's HMAC is the
//! same function without the per-call setup, and its SHA-1 uses the CPU's SHA extensions when present
//! (`ring`'s SHA-1 is portable code: twice as slow here). DTLS, SRTP ciphers and SHA-256 stay OpenSSL's.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha1::Sha1;
use str0m::crypto::{CryptoProvider, Sha1HmacProvider};

#[derive(Debug)]
struct RustSha1Hmac;

impl Sha1HmacProvider for RustSha1Hmac {
    fn sha1_hmac(&self, key: &[u8], payloads: &[&[u8]]) -> [u8; 20] {
        // HMAC takes keys of any length (RFC 2104), so this cannot fail.
        let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else { return [0; 20] };
        for p in payloads {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }
}

static SHA1_HMAC: RustSha1Hmac = RustSha1Hmac;

pub fn provider() -> Arc<CryptoProvider> {
    let mut p = str0m::crypto::from_feature_flags();
    p.sha1_hmac_provider = &SHA1_HMAC;
    Arc::new(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha1_matches_rfc2202() {
        // RFC 2202 test case 2.
        let got = SHA1_HMAC.sha1_hmac(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        let want = [
            0xef, 0xfc, 0xdf, 0x6a, 0xe5, 0xeb, 0x2f, 0xa2, 0xd2, 0x74, 0x16, 0xd5, 0xf1, 0x84, 0xdf, 0x9c, 0x25, 0x9a,
            0x7c, 0x79,
        ];
        assert_eq!(got, want);
    }
}
