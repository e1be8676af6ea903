//! Command line.

use std::time::Duration;

use clap::Parser;

/// Simulates N concurrent WHEP viewers (str0m: real ICE, DTLS, SRTP) against one glasscast WHEP endpoint,
/// counts the video and audio that arrive, and prints one JSON object on stdout.
#[derive(Debug, Clone, Parser)]
#[command(name = "glasscast-loadclient", version, about, long_about = None)]
pub struct Args {
    /// The WHEP endpoint, e.g. https://127.0.0.1:8443/whep/main (http:// works too).
    pub url: String,

    /// Number of concurrent viewers.
    #[arg(short = 'n', long, default_value_t = 1)]
    pub viewers: usize,

    /// Measurement window in seconds. It starts once every viewer has settled (received its first video
    /// frame, or failed, or timed out), i.e. after the last viewer connected; not merely after it started.
    #[arg(short = 'd', long, default_value_t = 10.0)]
    pub duration: f64,

    /// Milliseconds between starting one viewer and the next.
    #[arg(long, default_value_t = 50)]
    pub ramp_ms: u64,

    /// Expected video frame rate of the stream; delivery ratio = frames in window / (fps * window).
    #[arg(long, default_value_t = 30.0)]
    pub expect_fps: f64,

    /// Worker threads driving the viewers' str0m instances and sockets.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,

    /// Every K-th viewer (0, K, 2K ...) decrypts and depacketizes everything through str0m; the others
    /// count SRTP media from the clear RTP headers once they have their first frame (`src/light.rs`).
    /// 1: every viewer is full.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub full_every: u32,

    /// Shortest time in milliseconds between two rounds of a worker's loop, so that one wake-up serves
    /// many packets (0: wake per packet; costs more client CPU).
    #[arg(long, default_value_t = 2)]
    pub coalesce_ms: u64,

    /// Threads doing the HTTP requests (POST/PATCH/DELETE) so that a slow answer does not stall media.
    #[arg(long, default_value_t = 8)]
    pub http_threads: usize,

    /// Seconds a viewer may take from its POST to its first video frame before it counts as failed.
    #[arg(long, default_value_t = 15.0)]
    pub connect_timeout: f64,

    /// Timeout in seconds of each HTTP request.
    #[arg(long, default_value_t = 20.0)]
    pub http_timeout: f64,

    /// Bearer token sent as `Authorization: Bearer TOKEN`.
    #[arg(long, env = "GLASSCAST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Accept only the server certificate whose SubjectPublicKeyInfo has this SHA-256 (standard base64,
    /// as in Chromium's --ignore-certificate-errors-spki-list).
    #[arg(long, value_name = "BASE64")]
    pub spki_sha256: Option<String>,

    /// Accept any server certificate.
    #[arg(long, conflicts_with = "spki_sha256")]
    pub insecure: bool,

    /// Do not trickle the client's host candidates by PATCH (the server then finds the client by
    /// peer-reflexive discovery).
    #[arg(long)]
    pub no_trickle: bool,

    /// PID of the server process: its CPU use and RSS during the window are added to the output.
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Include one record per viewer in the output.
    #[arg(long)]
    pub per_viewer: bool,

    /// Print the first viewer's offer, answer and trickle fragment on stderr.
    #[arg(long)]
    pub dump_sdp: bool,

    /// Progress messages on stderr.
    #[arg(short, long)]
    pub verbose: bool,
}

impl Args {
    /// Checks what clap cannot; the message is for a usage error (exit code 2).
    pub fn validate(&self) -> Result<(), String> {
        if self.viewers == 0 {
            return Err("--viewers must be at least 1".into());
        }
        if self.threads == 0 || self.http_threads == 0 {
            return Err("--threads and --http-threads must be at least 1".into());
        }
        for (name, v) in [
            ("--duration", self.duration),
            ("--expect-fps", self.expect_fps),
            ("--connect-timeout", self.connect_timeout),
            ("--http-timeout", self.http_timeout),
        ] {
            if !v.is_finite() || v <= 0.0 || v > 1.0e6 {
                return Err(format!("{name} must be a positive number of reasonable size"));
            }
        }
        Ok(())
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.connect_timeout)
    }

    pub fn http_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.http_timeout)
    }
}
