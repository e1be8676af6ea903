//! glasscast-loadclient: N concurrent WHEP viewers against one glasscast endpoint, one JSON report.
//!
//! Exit codes: 0 the run happened (failures are in the numbers), 2 usage error, 1 could not run at all
//! (setup failed, or no request got any HTTP answer from the server).

mod addr;
mod cli;
mod crypto;
mod driver;
mod light;
mod run;
mod stats;
mod tls;
mod viewer;
mod whep;

use std::net::{IpAddr, ToSocketAddrs};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use reqwest::Url;

use crate::cli::Args;
use crate::tls::CertPolicy;
use crate::viewer::ViewerSettings;
use crate::whep::Whep;

fn usage_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("glasscast-loadclient: {msg}");
    eprintln!("Try 'glasscast-loadclient --help'.");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    // clap exits with 2 itself on a malformed command line.
    let args = Args::parse();
    if let Err(msg) = args.validate() {
        return usage_error(msg);
    }
    let url = match Url::parse(&args.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
        Ok(u) => return usage_error(format!("{u} is not an http(s) URL")),
        Err(e) => return usage_error(format!("bad URL {:?}: {e}", args.url)),
    };
    let policy = match (&args.spki_sha256, args.insecure) {
        (Some(pin), _) => match CertPolicy::pin_from_base64(pin) {
            Ok(p) => Some(p),
            Err(e) => return usage_error(format!("{e:#}")),
        },
        (None, true) => Some(CertPolicy::Any),
        (None, false) if url.scheme() == "https" => {
            return usage_error("an https URL needs --spki-sha256 BASE64 (the server's pin) or --insecure");
        }
        (None, false) => None,
    };

    match setup_and_run(&args, url, policy) {
        Ok(result) => {
            let out = &result.output;
            match serde_json::to_string(out) {
                Ok(json) => println!("{json}"),
                Err(e) => {
                    eprintln!("glasscast-loadclient: could not write the JSON: {e}");
                    return ExitCode::from(1);
                }
            }
            eprintln!("{}", out.summary_line());
            if result.reached_server {
                ExitCode::SUCCESS
            } else {
                eprintln!("glasscast-loadclient: no request got an HTTP answer from the server");
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("glasscast-loadclient: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn setup_and_run(args: &Args, url: Url, policy: Option<CertPolicy>) -> anyhow::Result<run::RunResult> {
    let server_ip = server_ip(&url);
    let whep = Whep::new(url, args.token.clone(), policy, args.http_timeout())?;
    let crypto = crypto::provider();
    // One DTLS certificate for all viewers: saves a key generation per viewer; the server cannot tell.
    let Some(dtls_cert) = crypto.dtls_provider.generate_certificate() else {
        bail!("str0m could not generate a DTLS certificate");
    };
    let full_every = args.full_every;
    let settings = ViewerSettings { crypto, dtls_cert, connect_timeout: args.connect_timeout(), server_ip, full_every };
    run::run(args, whep, settings).context("the run failed")
}

/// The server's address from the URL (a literal, or the first IPv4 it resolves to).
fn server_ip(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(ip);
    }
    let port = url.port_or_known_default().unwrap_or(443);
    (host, port).to_socket_addrs().ok()?.map(|a| a.ip()).find(IpAddr::is_ipv4)
}
