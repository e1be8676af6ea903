//! The `glasscast` binary: command line, logging, and `serve`.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![deny(unsafe_code)]

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use glasscast::auth::{AdminTokenSource, IssueRequest, TokenKind};
use glasscast::cli;
use glasscast::config::Config;
use glasscast::ids::StreamScope;
use glasscast::serve::{Server, display_host};

/// Self-hosted, low-latency screen + audio streaming: encode once, watch in any browser over WHEP.
///
/// Configuration comes from built-in defaults, then a TOML file (--config, else /etc/glasscast/glasscast.toml
/// when it exists), then environment variables GLASSCAST__SECTION__KEY (e.g. GLASSCAST__SERVER__LISTEN=0.0.0.0:9443).
/// config/glasscast.toml in the source tree documents every option.
#[derive(Parser)]
#[command(name = "glasscast", version, about, long_about)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, short, global = true, env = "GLASSCAST_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the streams and serve the player, WHEP endpoints and health checks.
    ///
    /// Prints a link to each stream's player and, with the self-signed certificate, its SHA-256 fingerprint.
    /// Endpoints: / (stream list), /watch/{stream} (player), /admin (admin console), POST /whep/{stream}
    /// (WHEP), /healthz, /readyz. Stops gracefully on SIGINT/SIGTERM.
    Serve,
    /// Load and validate the configuration, print it, and exit (non-zero when invalid).
    CheckConfig,
    /// List what this machine can capture and encode: X11 displays, cameras, audio inputs and outputs (with
    /// the names to put in the configuration) and each encoder's probe result.
    Sources,
    /// Check that the configuration can work here: GStreamer elements, each stream's encoder and sources
    /// (really started), VA-API devices, the desktop session, ports, certificate, state directory. One line
    /// per finding with its fix; exits 1 when something configured cannot work.
    Doctor,
    /// List the streams with their state and viewers (admin API).
    Streams {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Start or stop a stream, or push it to a WHIP endpoint too (admin API). Stopping ends its sessions.
    /// `push NAME URL [--token T]` lasts until the stream stops (it prints the push's id); `[[streams.push]]`
    /// in the configuration keeps it across restarts. `unpush NAME ID` stops one.
    Stream {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(value_parser = ["start", "stop", "push", "unpush"])]
        action: String,
        /// The stream's name.
        name: String,
        /// push: the WHIP endpoint, e.g. https://sfu.example/whip/room1; unpush: the push's id.
        url: Option<String>,
        /// push: the bearer token the endpoint wants.
        #[arg(long, env = "GLASSCAST_PUSH_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
    /// List the live sessions: stream, token label, since when (admin API).
    Sessions {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Print the admin console's link, with the admin token in its #fragment (it never reaches a server
    /// log): open it in a browser on a machine you trust. `--server` gives the address others reach.
    AdminLink {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// End a session now (admin API).
    Kick {
        #[command(flatten)]
        target: TargetArgs,
        /// The session's id (from `glasscast sessions`).
        id: String,
    },
    /// List or rotate the keys that sign viewer tokens (admin API).
    Key {
        #[command(flatten)]
        target: TargetArgs,
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Start or stop recording a stream, and list, download or delete its recordings (admin API;
    /// docs/recording.md). A start or stop lasts until the server restarts.
    Recording {
        #[command(flatten)]
        target: TargetArgs,
        #[command(subcommand)]
        command: RecordingCommand,
    },
    /// Issue, list or revoke viewer and publish tokens (admin API).
    Token {
        #[command(flatten)]
        target: TargetArgs,
        #[command(subcommand)]
        command: TokenCommand,
    },
}

/// Which server to talk to. By default the local one, as the configuration describes it: its listen port,
/// its admin token and its self-signed certificate's fingerprint (read from the state directory).
#[derive(clap::Args)]
struct TargetArgs {
    /// Base URL of the server, e.g. https://glasscast.lan:8443.
    #[arg(long, global = true, env = "GLASSCAST_SERVER")]
    server: Option<String>,
    /// The admin token (default: auth.admin_token, auth.admin_token_file or state_dir/auth/admin_token).
    #[arg(long, global = true, env = "GLASSCAST_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// SHA-256 fingerprint of the server's certificate (AA:BB:...), as `serve` prints it; the connection is
    /// refused unless the server presents exactly that certificate.
    #[arg(long, global = true, env = "GLASSCAST_FINGERPRINT")]
    fingerprint: Option<String>,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Issue a viewer token; prints the link (token in its #fragment) and a QR code of it.
    Issue {
        /// The stream, or `*` for all streams.
        #[arg(long)]
        stream: String,
        /// How long it works: 90s, 30m, 2h, 7d.
        #[arg(long, default_value = "2h", value_parser = glasscast::cli::parse_ttl)]
        ttl: std::time::Duration,
        /// A name for it (who or where), shown in `token list`.
        #[arg(long)]
        label: Option<String>,
        /// At most this many concurrent sessions with this token.
        #[arg(long)]
        max_sessions: Option<u32>,
        /// A publish token for WHIP ingest (OBS, ffmpeg) to a `source = "whip"` stream, instead of a viewer
        /// token; prints the WHIP URL and the bearer token to give the publisher.
        #[arg(long)]
        publish: bool,
    },
    /// List issued tokens (ids, labels, expiry, revoked; never the tokens).
    List,
    /// Revoke a token by id; its live sessions end within seconds.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// List the signing keys (ids, ages; never the keys).
    List,
    /// Make a new signing key for new tokens; older tokens keep working unless --retire-previous.
    Rotate {
        /// Also drop every older key: every token issued before stops working at once.
        #[arg(long)]
        retire_previous: bool,
    },
    /// Drop one older signing key: the tokens it signed stop working (the current key: rotate first).
    Retire { kid: String },
}

#[derive(Subcommand)]
enum RecordingCommand {
    /// Record the stream now (into its `[streams.record]` directory, with its retention).
    Start { name: String },
    /// Stop recording it (the file being written is finished).
    Stop { name: String },
    /// List its recordings, oldest first.
    List { name: String },
    /// Download one (to FILE in this directory, or --output).
    Get {
        name: String,
        file: String,
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
    /// Delete one (not the one being written).
    Delete { name: String, file: String },
}

/// How long the links printed at start work.
const STARTUP_LINK_TTL: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cfg = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("glasscast: {e}");
            std::process::exit(2);
        }
    };
    match cli.command {
        Command::CheckConfig => {
            println!("{cfg:#?}");
            for w in cfg.warnings() {
                eprintln!("glasscast: warning: {w}");
            }
            Ok(())
        }
        Command::Serve => {
            glasscast::logging::init(&cfg.log).context("opening log.file")?;
            let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            rt.block_on(serve(cfg))
        }
        Command::Sources => {
            print!("{}", glasscast::doctor::sources(&cfg)?);
            Ok(())
        }
        Command::Doctor => {
            let findings = glasscast::doctor::run(&cfg);
            for f in &findings {
                println!("{f}");
            }
            if findings.iter().any(|f| f.level == glasscast::doctor::Level::Fail) {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Streams { target } => cli::streams(&resolve(&cfg, target)?),
        Command::Sessions { target } => cli::sessions(&resolve(&cfg, target)?),
        Command::Stream { target, action, name, url, token } => match (action.as_str(), url) {
            ("push", Some(url)) => cli::stream_push(&resolve(&cfg, target)?, &name, &url, token),
            ("push", None) => anyhow::bail!("`glasscast stream push NAME URL`: the WHIP endpoint's URL is missing"),
            ("unpush", Some(id)) => cli::stream_unpush(&resolve(&cfg, target)?, &name, &id),
            ("unpush", None) => anyhow::bail!("`glasscast stream unpush NAME ID`: the push's id is missing"),
            _ => cli::stream_action(&resolve(&cfg, target)?, &name, &action),
        },
        Command::Kick { target, id } => cli::kick(&resolve(&cfg, target)?, &id),
        Command::AdminLink { target } => {
            let t = resolve(&cfg, target)?;
            println!("{}", cli::admin_link(&t));
            Ok(())
        }
        Command::Key { target, command } => {
            let t = resolve(&cfg, target)?;
            match command {
                KeyCommand::List => cli::key_list(&t),
                KeyCommand::Rotate { retire_previous } => cli::key_rotate(&t, retire_previous),
                KeyCommand::Retire { kid } => cli::key_retire(&t, &kid),
            }
        }
        Command::Recording { target, command } => {
            let t = resolve(&cfg, target)?;
            match command {
                RecordingCommand::Start { name } => cli::recording_switch(&t, &name, true),
                RecordingCommand::Stop { name } => cli::recording_switch(&t, &name, false),
                RecordingCommand::List { name } => cli::recording_list(&t, &name),
                RecordingCommand::Get { name, file, output } => cli::recording_get(&t, &name, &file, output.as_deref()),
                RecordingCommand::Delete { name, file } => cli::recording_delete(&t, &name, &file),
            }
        }
        Command::Token { target, command } => {
            let t = resolve(&cfg, target)?;
            match command {
                TokenCommand::Issue { stream, ttl, label, max_sessions, publish } => {
                    cli::token_issue(&t, &stream, ttl, label, max_sessions, publish)
                }
                TokenCommand::List => cli::token_list(&t),
                TokenCommand::Revoke { id } => cli::token_revoke(&t, &id),
            }
        }
    }
}

fn resolve(cfg: &Config, t: TargetArgs) -> anyhow::Result<cli::Target> {
    cli::Target::resolve(cfg, t.server, t.admin_token, t.fingerprint)
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let server = Server::start(&cfg).await?;
    // Type=notify units wait for this (no-op elsewhere).
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let host = display_host(&cfg, server.addr);
    let base = format!("{}://{host}:{}", server.scheme(), server.addr.port());
    println!("glasscast is serving on {}", server.addr);
    // With access control on, a link needs a token. On a terminal (`make run`) print links that work for
    // STARTUP_LINK_TTL; elsewhere (systemd, containers) print no token: the output goes to logs.
    let links_with_tokens = server.auth.required() && std::io::stdout().is_terminal();
    for s in cfg.streams.iter().filter(|s| s.enabled) {
        let fragment = if links_with_tokens {
            let req = IssueRequest {
                scope: StreamScope::One(s.name.clone()),
                ttl: STARTUP_LINK_TTL,
                label: Some("printed at start".into()),
                max_sessions: None,
                kind: TokenKind::View,
            };
            let (token, _) = server.auth.issue(&req).context("issuing a viewer token")?;
            format!("#token={token}")
        } else {
            String::new()
        };
        println!("  watch {:<12} {base}/watch/{}{fragment}", s.name, s.name);
    }
    if server.auth.required() {
        if links_with_tokens {
            println!("  (these links carry a viewer token valid for 12 hours)");
        } else {
            println!(
                "  viewers need a token: `glasscast token issue --stream NAME` prints a link (or POST {base}/api/v1/tokens)"
            );
        }
        // On a terminal only, like the viewer links: the admin token must not go to logs.
        if links_with_tokens && let Ok(t) = cli::Target::resolve(&cfg, Some(base.clone()), None, None) {
            println!("  admin console {}", cli::admin_link(&t));
        }
        match &server.admin_token {
            AdminTokenSource::Generated(path) => println!("  admin token in {}", path.display()),
            AdminTokenSource::File(path) => println!("  admin token from {}", path.display()),
            AdminTokenSource::Config => println!("  admin token from the configuration"),
        }
    }
    if let Some(tls) = &server.tls
        && tls.self_signed
    {
        println!("  self-signed certificate {}", tls.cert_path.display());
        println!("  SHA-256 fingerprint {}", tls.fingerprint);
        println!("  (your browser will warn once; check the fingerprint matches before accepting)");
    }
    server.run_until_signal().await
}
