//! The admin CLI: `glasscast streams`, `glasscast token issue|list|revoke`, a client of `/api/v1`.
//!
//! It works against the local server (server URL, admin token and certificate read from the configuration
//! and the state directory) or a remote one (`--server`, `--admin-token`, `--fingerprint`). A self-signed
//! certificate is pinned by its SHA-256 fingerprint, never just accepted: the TLS handshake is still
//! verified with the certificate's key, and any other certificate is refused.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::Value;

use crate::config::Config;
use crate::http::tls::fingerprint;

/// Where the admin API is and how to reach it.
pub struct Target {
    pub server: String,
    pub admin_token: String,
    /// SHA-256 fingerprint (`AA:BB:...`) the server's certificate must have; `None`: the system's roots.
    pub fingerprint: Option<String>,
}

/// `/admin` on `t`'s server with its admin token in the fragment.
pub fn admin_link(t: &Target) -> String {
    // Percent-encoded but for RFC 3986's unreserved characters, so the page's URLSearchParams reads it back
    // unchanged (a `+` would become a space).
    let token: String = t
        .admin_token
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("{}/admin#token={token}", t.server)
}

impl Target {
    /// Fills what was not given from the configuration: the listen address, the admin token (configured,
    /// its file, or the generated one) and the self-signed certificate's fingerprint.
    pub fn resolve(
        cfg: &Config,
        server: Option<String>,
        admin_token: Option<String>,
        fingerprint_arg: Option<String>,
    ) -> anyhow::Result<Self> {
        let scheme = if cfg.server.plain_http { "http" } else { "https" };
        let local = server.is_none();
        let server = server.unwrap_or_else(|| format!("{scheme}://127.0.0.1:{}", cfg.listen_addr().port()));
        let admin_token = match admin_token.or_else(|| cfg.auth.admin_token.clone()) {
            Some(t) => t,
            None => {
                let path =
                    cfg.auth.admin_token_file.clone().unwrap_or_else(|| cfg.server.state_dir.join("auth/admin_token"));
                std::fs::read_to_string(&path)
                    .with_context(|| format!("no admin token given, and none readable at {}", path.display()))?
                    .trim()
                    .to_owned()
            }
        };
        let fingerprint = match fingerprint_arg {
            Some(f) => Some(f.to_ascii_uppercase()),
            None if local && scheme == "https" && cfg.server.tls_cert.is_none() => {
                Some(local_fingerprint(&cfg.server.state_dir.join("tls/cert.pem"))?)
            }
            None => None,
        };
        Ok(Self { server: server.trim_end_matches('/').to_owned(), admin_token, fingerprint })
    }

    fn client(&self) -> anyhow::Result<reqwest::blocking::Client> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = reqwest::blocking::Client::builder().timeout(Duration::from_secs(20));
        let builder = match &self.fingerprint {
            Some(fp) => {
                let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
                    .with_safe_default_protocol_versions()?
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(Pinned { fingerprint: fp.clone(), provider }))
                    .with_no_client_auth();
                builder.tls_backend_preconfigured(tls)
            }
            None => {
                let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
                builder
            }
        };
        builder.build().context("building the HTTPS client")
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}/api/v1{path}", self.server);
        let mut req = self.client()?.request(method, &url).bearer_auth(&self.admin_token);
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let resp = req.send().map_err(|e| anyhow::anyhow!("{url}: {}", error_chain(&e)))?;
        let status = resp.status();
        let text = resp.text().unwrap_or_default();
        if !status.is_success() {
            return Err(refusal(&url, status, text));
        }
        if text.is_empty() {
            Ok(Value::Null)
        } else {
            serde_json::from_str(&text).context("the server's answer is not JSON")
        }
    }
}

/// A refused call: the URL, the status and the problem's `detail` (or the body as it came).
fn refusal(url: &str, status: reqwest::StatusCode, text: String) -> anyhow::Error {
    let detail = serde_json::from_str::<Value>(&text).ok().and_then(|v| v["detail"].as_str().map(str::to_owned));
    anyhow::anyhow!("{url}: {status}: {}", detail.unwrap_or(text))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

fn local_fingerprint(cert_pem: &Path) -> anyhow::Result<String> {
    use rustls::pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_file(cert_pem)
        .with_context(|| format!("reading the server certificate {} (or give --fingerprint)", cert_pem.display()))?;
    Ok(fingerprint(&der))
}

/// Accepts exactly the certificate with this SHA-256 fingerprint (and checks the handshake with its key).
#[derive(Debug)]
struct Pinned {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = fingerprint(end_entity);
        if got == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "certificate fingerprint mismatch: the server presented {got}, expected {}",
                self.fingerprint
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// `2h`, `30m`, `45s`, `7d`, or plain seconds.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num.parse().map_err(|_| format!("`{text}` is not a duration (e.g. 90s, 30m, 2h, 7d)"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (s, m, h or d)")),
    };
    Ok(Duration::from_secs(secs))
}

/// `glasscast token issue`: prints the link and a QR code of it.
pub fn token_issue(
    t: &Target,
    stream: &str,
    ttl: Duration,
    label: Option<String>,
    max_sessions: Option<u32>,
    publish: bool,
) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "stream": stream, "ttl_s": ttl.as_secs(), "label": label, "max_sessions": max_sessions, "publish": publish
    });
    let v = t.call(reqwest::Method::POST, "/tokens", Some(body))?;
    if publish {
        // OBS: Settings, Stream, Service "WHIP": Server = the URL, Bearer Token = the token.
        let path = v["watch_path"].as_str().context("no watch_path in the answer")?;
        println!("WHIP URL      {}{path}", t.server);
        println!("Bearer token  {}", v["token"].as_str().context("no token in the answer")?);
        println!(
            "token id {} (publish) for `{stream}`, expires at {} (Unix time)",
            v["id"].as_str().unwrap_or("?"),
            v["expires_at"]
        );
        return Ok(());
    }
    let link = format!("{}{}", t.server, v["watch_path"].as_str().context("no watch_path in the answer")?);
    let qr = qrcode::QrCode::new(link.as_bytes()).context("making the QR code")?;
    println!("{}", qr.render::<qrcode::render::unicode::Dense1x2>().quiet_zone(true).build());
    println!("{link}");
    println!(
        "token id {} for `{}`, expires at {} (Unix time)",
        v["id"].as_str().unwrap_or("?"),
        stream,
        v["expires_at"]
    );
    Ok(())
}

/// `glasscast token list`
pub fn token_list(t: &Target) -> anyhow::Result<()> {
    let v = t.call(reqwest::Method::GET, "/tokens", None)?;
    println!("{:<32}  {:<12}  {:<10}  {:<8}  label", "id", "stream", "expires", "state");
    let now = crate::auth::now_s();
    for tok in v.as_array().map(Vec::as_slice).unwrap_or_default() {
        let left = tok["expires_at"].as_u64().unwrap_or(0).saturating_sub(now);
        let state = if tok["revoked"] == true { "revoked" } else { "valid" };
        println!(
            "{:<32}  {:<12}  {:<10}  {:<8}  {}",
            tok["id"].as_str().unwrap_or("?"),
            tok["stream"].as_str().unwrap_or("?"),
            format!("in {}m", left / 60),
            state,
            tok["label"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// `glasscast token revoke ID`
pub fn token_revoke(t: &Target, id: &str) -> anyhow::Result<()> {
    t.call(reqwest::Method::DELETE, &format!("/tokens/{id}"), None)?;
    println!("revoked {id}; its sessions end within a few seconds");
    Ok(())
}

/// `glasscast sessions`
pub fn sessions(t: &Target) -> anyhow::Result<()> {
    let v = t.call(reqwest::Method::GET, "/sessions", None)?;
    println!(
        "{:<32}  {:<9}  {:<12}  {:<9}  {:>8}  {:<22}  {:<9}  {:>9}  {:>7}  {:>6}  label",
        "id", "role", "stream", "connected", "for", "remote", "path", "media", "rtt", "loss"
    );
    let now = crate::auth::now_s();
    for s in v.as_array().map(Vec::as_slice).unwrap_or_default() {
        let age = now.saturating_sub(s["since"].as_u64().unwrap_or(now));
        let remote = s["remote_address"].as_str().or(s["client"].as_str()).unwrap_or("-");
        let rtt = s["rtt_ms"].as_f64().map_or("-".to_owned(), |r| format!("{r:.1}ms"));
        let loss = s["fraction_lost"].as_f64().map_or("-".to_owned(), |l| format!("{:.1}%", l * 100.0));
        let path = match (s["candidate_type"].as_str(), s["protocol"].as_str()) {
            (Some(kind), Some(proto)) => format!("{kind}/{proto}"),
            _ => "-".to_owned(),
        };
        // Sent to a viewer, or received from a publisher.
        let media = s["bytes_sent"].as_f64().unwrap_or(0.0) + s["bytes_received"].as_f64().unwrap_or(0.0);
        println!(
            "{:<32}  {:<9}  {:<12}  {:<9}  {:>7}s  {:<22}  {:<9}  {:>7}MB  {:>7}  {:>6}  {}",
            s["id"].as_str().unwrap_or("?"),
            s["role"].as_str().unwrap_or("viewer"),
            s["stream"].as_str().unwrap_or("?"),
            if s["connected"] == true { "yes" } else { "no" },
            age,
            remote,
            path,
            format!("{:.1}", media / 1e6),
            rtt,
            loss,
            s["label"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// `glasscast key list`
pub fn key_list(t: &Target) -> anyhow::Result<()> {
    print_keys(&t.call(reqwest::Method::GET, "/keys", None)?);
    Ok(())
}

/// `glasscast key rotate [--retire-previous]`
pub fn key_rotate(t: &Target, retire_previous: bool) -> anyhow::Result<()> {
    let v =
        t.call(reqwest::Method::POST, "/keys/rotate", Some(serde_json::json!({ "retire_previous": retire_previous })))?;
    print_keys(&v);
    if retire_previous {
        println!("older keys retired: tokens they signed no longer work, and their sessions end within seconds");
    } else {
        println!("new tokens use the new key; tokens issued before keep working until they expire");
    }
    Ok(())
}

/// `glasscast key retire KID`
pub fn key_retire(t: &Target, kid: &str) -> anyhow::Result<()> {
    t.call(reqwest::Method::DELETE, &format!("/keys/{kid}"), None)?;
    println!("retired key {kid}: tokens it signed no longer work, and their sessions end within seconds");
    Ok(())
}

fn print_keys(v: &Value) {
    println!("{:<10}  {:<8}  created (Unix time)", "key id", "current");
    for k in v.as_array().map(Vec::as_slice).unwrap_or_default() {
        println!(
            "{:<10}  {:<8}  {}",
            k["kid"].as_str().unwrap_or("?"),
            if k["current"] == true { "yes" } else { "" },
            k["created_at"]
        );
    }
}

/// `glasscast kick ID`
pub fn kick(t: &Target, id: &str) -> anyhow::Result<()> {
    t.call(reqwest::Method::DELETE, &format!("/sessions/{id}"), None)?;
    println!("ended session {id}");
    Ok(())
}

/// `glasscast stream start|stop NAME`
pub fn stream_action(t: &Target, name: &str, action: &str) -> anyhow::Result<()> {
    t.call(reqwest::Method::POST, &format!("/streams/{name}/{action}"), None)?;
    println!("stream {name}: {action} done");
    Ok(())
}

/// `glasscast stream push NAME URL [--token T]`
pub fn stream_push(t: &Target, name: &str, url: &str, token: Option<String>) -> anyhow::Result<()> {
    let body = serde_json::json!({ "url": url, "token": token });
    let v = t.call(reqwest::Method::POST, &format!("/streams/{name}/push"), Some(body))?;
    let id = &v["id"];
    println!(
        "stream {name}: push {id} to {url} started (its state: the admin console, `curl .../readyz` with the admin token, or the metrics; `glasscast stream unpush {name} {id}` stops it)"
    );
    Ok(())
}

/// `glasscast stream unpush NAME ID`
pub fn stream_unpush(t: &Target, name: &str, id: &str) -> anyhow::Result<()> {
    t.call(reqwest::Method::DELETE, &format!("/streams/{name}/push/{id}"), None)?;
    println!("stream {name}: push {id} stopped");
    Ok(())
}

/// `glasscast recording start|stop NAME`
pub fn recording_switch(t: &Target, name: &str, on: bool) -> anyhow::Result<()> {
    let method = if on { reqwest::Method::POST } else { reqwest::Method::DELETE };
    t.call(method, &format!("/streams/{name}/record"), None)?;
    let what = if on { "recording (its state: `glasscast recording list`, /readyz)" } else { "recording stopped" };
    println!("stream {name}: {what}");
    Ok(())
}

/// `glasscast recording list NAME`
pub fn recording_list(t: &Target, name: &str) -> anyhow::Result<()> {
    let v = t.call(reqwest::Method::GET, &format!("/streams/{name}/recordings"), None)?;
    println!("{:<24}  {:>10}  state", "file", "MiB");
    for f in v.as_array().map(Vec::as_slice).unwrap_or_default() {
        let mib = f["bytes"].as_u64().unwrap_or(0) as f64 / 1_048_576.0;
        let state = if f["writing"] == true { "writing" } else { "done" };
        println!("{:<24}  {mib:>10.1}  {state}", f["name"].as_str().unwrap_or("?"));
    }
    Ok(())
}

/// `glasscast recording get NAME FILE [-o PATH]`: written to `PATH.part`, renamed when whole.
pub fn recording_get(t: &Target, name: &str, file: &str, out: Option<&Path>) -> anyhow::Result<()> {
    let url = format!("{}/api/v1/streams/{name}/recordings/{file}", t.server);
    let mut resp = t
        .client()?
        .get(&url)
        .bearer_auth(&t.admin_token)
        .timeout(Duration::from_secs(3600))
        .send()
        .map_err(|e| anyhow::anyhow!("{url}: {}", error_chain(&e)))?;
    if !resp.status().is_success() {
        let status = resp.status();
        return Err(refusal(&url, status, resp.text().unwrap_or_default()));
    }
    let out = out.map_or_else(|| Path::new(file).to_owned(), Path::to_owned);
    let part = out.with_extension("mp4.part");
    let mut f = std::fs::File::create(&part).with_context(|| format!("creating {}", part.display()))?;
    let bytes = resp.copy_to(&mut f).with_context(|| format!("downloading {url}"))?;
    f.sync_all()?;
    std::fs::rename(&part, &out).with_context(|| format!("renaming {}", part.display()))?;
    println!("{} ({bytes} bytes)", out.display());
    Ok(())
}

/// `glasscast recording delete NAME FILE`
pub fn recording_delete(t: &Target, name: &str, file: &str) -> anyhow::Result<()> {
    t.call(reqwest::Method::DELETE, &format!("/streams/{name}/recordings/{file}"), None)?;
    println!("stream {name}: {file} deleted");
    Ok(())
}

/// `glasscast streams`
pub fn streams(t: &Target) -> anyhow::Result<()> {
    let v = t.call(reqwest::Method::GET, "/streams", None)?;
    println!("{:<16}  {:<9}  {:>7}  {:>9}  {:>3}  encoder", "stream", "state", "viewers", "size", "fps");
    for s in v.as_array().map(Vec::as_slice).unwrap_or_default() {
        println!(
            "{:<16}  {:<9}  {:>7}  {:>9}  {:>3}  {}",
            s["name"].as_str().unwrap_or("?"),
            s["state"].as_str().unwrap_or("?"),
            s["viewers"].to_string(),
            format!("{}x{}", s["width"], s["height"]),
            s["fps"].to_string(),
            s["encoder"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_ttl;
    use std::time::Duration;

    #[test]
    fn ttls_read_like_people_write_them() {
        assert_eq!(parse_ttl("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert!(parse_ttl("2 weeks").is_err());
        assert!(parse_ttl("h").is_err());
    }
}
