//! A glasscast that is not in this test process (a container, another machine): an HTTPS client for its
//! self-signed certificate, and [`super::WebrtcbinViewer::connect_with`] for any base URL.

use std::time::Duration;

use super::WebrtcbinViewer;

/// A client that trusts exactly `cert_pem` (the server's self-signed certificate), nothing else.
pub fn client_trusting(cert_pem: &[u8]) -> reqwest::Client {
    let cert = reqwest::Certificate::from_pem(cert_pem).expect("a PEM certificate");
    reqwest::Client::builder().timeout(Duration::from_secs(20)).tls_certs_only([cert]).build().expect("client")
}

/// Offers, POSTs to `{base}/whep/{stream}` (with `Authorization: Bearer` when a token is given) and sets the
/// answer, which it returns. Panics unless the server says 201.
pub async fn connect(
    v: &mut WebrtcbinViewer,
    http: &reqwest::Client,
    base: &str,
    stream: &str,
    token: Option<&str>,
) -> String {
    let offer = v.offer().await;
    let mut req = http.post(format!("{base}/whep/{stream}")).header("content-type", "application/sdp").body(offer);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("POST reaches the server");
    v.take_answer(resp, base, stream).await
}
