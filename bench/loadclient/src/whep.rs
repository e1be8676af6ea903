//! The WHEP HTTP side: POST the offer, PATCH trickled candidates, DELETE the session.

use std::time::Duration;

use anyhow::Context;
use reqwest::Url;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, ETAG, IF_MATCH, LOCATION};

use crate::tls::{self, CertPolicy};

const SDP: &str = "application/sdp";
const SDPFRAG: &str = "application/trickle-ice-sdpfrag";
/// How much of an unexpected response body goes into an error message.
const BODY_EXCERPT: usize = 300;

/// A WHEP endpoint and the HTTP client that talks to it. Cheap to clone and share between threads.
#[derive(Clone)]
pub struct Whep {
    client: Client,
    url: Url,
    token: Option<String>,
}

/// A created session.
#[derive(Debug, Clone)]
pub struct Created {
    pub answer: String,
    pub location: Url,
    pub etag: Option<String>,
}

/// What the server answered to an offer.
#[derive(Debug)]
pub enum PostOutcome {
    Created(Created),
    /// Any status other than 201, with the problem+json `title`/`detail` when there was one.
    Refused {
        status: u16,
        message: String,
    },
}

impl Whep {
    /// `policy`: `None` for the default (webpki-less: only plain http or pinned/insecure https work).
    pub fn new(url: Url, token: Option<String>, policy: Option<CertPolicy>, timeout: Duration) -> anyhow::Result<Self> {
        let mut builder = Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .no_proxy()
            .user_agent(concat!("glasscast-loadclient/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(64);
        // No policy: https fails certificate checks (there are no roots here); the usage check asks for one.
        let policy = policy.unwrap_or(CertPolicy::Any);
        builder = builder.tls_backend_preconfigured(tls::client_config(policy)?);
        let client = builder.build().context("building the HTTP client")?;
        Ok(Whep { client, url, token })
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    fn auth(&self, req: RequestBuilder) -> RequestBuilder {
        match &self.token {
            Some(t) => req.header(AUTHORIZATION, format!("Bearer {t}")),
            None => req,
        }
    }

    /// POSTs the offer. `Err`: no HTTP answer at all (connect, TLS, timeout, bad Location).
    pub fn post_offer(&self, offer: &str) -> Result<PostOutcome, String> {
        let req = self.auth(self.client.post(self.url.clone()).header(CONTENT_TYPE, SDP)).body(offer.to_owned());
        let resp = req.send().map_err(|e| error_chain(&e))?;
        let status = resp.status().as_u16();
        if status != 201 {
            return Ok(PostOutcome::Refused { status, message: problem_message(resp) });
        }
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| "201 without a Location header".to_owned())?;
        let location =
            self.url.join(&location).map_err(|e| format!("201 with an unusable Location {location:?}: {e}"))?;
        let etag = resp.headers().get(ETAG).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let answer = resp.text().map_err(|e| format!("reading the answer: {}", error_chain(&e)))?;
        Ok(PostOutcome::Created(Created { answer, location, etag }))
    }

    /// PATCHes a trickle-ice-sdpfrag; the status, or the transport error.
    pub fn patch(&self, location: &Url, etag: Option<&str>, frag: &str) -> Result<(u16, String), String> {
        let mut req = self.auth(self.client.patch(location.clone()).header(CONTENT_TYPE, SDPFRAG));
        if let Some(tag) = etag {
            req = req.header(IF_MATCH, tag);
        }
        let resp = req.body(frag.to_owned()).send().map_err(|e| error_chain(&e))?;
        let status = resp.status().as_u16();
        let message = if resp.status().is_success() { String::new() } else { problem_message(resp) };
        Ok((status, message))
    }

    /// DELETEs the session; the status, or the transport error.
    pub fn delete(&self, location: &Url) -> Result<u16, String> {
        let resp = self.auth(self.client.delete(location.clone())).send().map_err(|e| error_chain(&e))?;
        Ok(resp.status().as_u16())
    }
}

/// `title: detail` of an RFC 9457 problem body, else an excerpt of the body.
fn problem_message(resp: Response) -> String {
    let status = resp.status();
    let body = resp.text().unwrap_or_default();
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
        let title = v.get("title").and_then(|t| t.as_str());
        let detail = v.get("detail").and_then(|t| t.as_str());
        match (title, detail) {
            (Some(t), Some(d)) => return format!("{t}: {d}"),
            (Some(t), None) => return t.to_owned(),
            (None, Some(d)) => return d.to_owned(),
            (None, None) => {}
        }
    }
    let excerpt: String = body.trim().chars().take(BODY_EXCERPT).collect();
    if excerpt.is_empty() { status.canonical_reason().unwrap_or("no body").to_owned() } else { excerpt }
}

/// An error and its sources, `outer: inner: innermost` (reqwest hides the useful part in the sources).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        src = s.source();
    }
    out
}
