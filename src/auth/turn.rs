//! TURN REST credentials (draft-uberti-behave-turn-rest, coturn's `use-auth-secret`): a username of
//! `EXPIRY:NAME` and a credential of base64(HMAC-SHA1(secret, username)), which the TURN server checks with
//! the same shared secret, and refuses after EXPIRY (Unix seconds). No long-lived password leaves glasscast.

use base64::Engine;

/// The (username, credential) pair for `name`, valid until `expires_at`.
pub fn rest_credentials(secret: &str, expires_at: u64, name: &str) -> (String, String) {
    use aws_lc_rs::hmac;
    let username = format!("{expires_at}:{name}");
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    let tag = hmac::sign(&key, username.as_bytes());
    (username, base64::engine::general_purpose::STANDARD.encode(tag.as_ref()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_credential_is_base64_hmac_sha1_of_the_username() {
        // Python: base64.b64encode(hmac.new(b"s3cret", b"1700000000:glasscast", hashlib.sha1).digest())
        let (user, cred) = super::rest_credentials("s3cret", 1_700_000_000, "glasscast");
        assert_eq!(user, "1700000000:glasscast");
        assert_eq!(cred, "0b92t03EHECMZmdwMb3BtnHUo3I=");
    }
}
