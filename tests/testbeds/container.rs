//! The container image and compose.yaml, run the way docs/container.md says: an image built from the
//! Containerfile with this build's binary (`--target prebuilt`) on a local Debian 12 base image, started with
//! `podman-compose up -d` (host networking, the config directory read-only, a named state volume). Its health
//! check passes; glasscast runs as uid 10001 under an init; the CLI inside the container issues a viewer token;
//! a WHEP client on the host (webrtcbin) plays the test stream at the configured size; it stops on SIGTERM
//! with exit code 0; and `podman-compose down -v` leaves no container, pod, network or volume of the project.
//! Then the same image on a bridge network (compose.bridge.yaml: published ports, `webrtc.advertise`): a viewer
//! on the host plays through the published media port. Then with compose.portal.yaml against a headless
//! Wayland session: only the session bus and `pulse/` of its runtime directory are in the container, and
//! the portal's screen cast plays.
//!
//! Needs root (debootstrap, rootful Podman), podman and podman-compose >= 1.1 (scripts/install-deps.sh --test),
//! and a Debian 12 host: the host-built binary must match the image's glibc and GStreamer.

use crate::common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

const BASE_IMAGE: &str = "localhost/debian:bookworm";
/// The image without the binary, kept between runs as the next run's build cache (packages take ~40 s).
const RUNTIME_CACHE: &str = "localhost/glasscast-runtime:test-cache";
const ADMIN: &str = "container-admin-token-0123456789";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `program args` with the testbed's containers.conf; panics with its output unless it succeeds.
fn run(program: &str, args: &[&str], envs: &[(&str, String)]) -> String {
    let out = try_run(program, args, envs);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(out.status.success(), "{program} {args:?} failed:\n{}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

fn try_run(program: &str, args: &[&str], envs: &[(&str, String)]) -> Output {
    let conf = repo().join("scripts/testbed/containers.conf");
    let mut cmd = Command::new(program);
    cmd.args(args).env("CONTAINERS_CONF", conf).envs(envs.iter().map(|(k, v)| (k, v)));
    cmd.output().unwrap_or_else(|e| panic!("{program} runs (scripts/install-deps.sh --test installs it): {e}"))
}

fn podman(args: &[&str]) -> String {
    run("podman", args, &[])
}

fn image_ids() -> Vec<String> {
    podman(&["images", "--all", "--quiet", "--no-trunc"]).lines().map(str::to_owned).collect()
}

/// Builds the image with `binary` as the prebuilt one and returns the ids of the images this build made.
fn build_image(tag: &str, binary: &Path) -> Vec<String> {
    run(&repo().join("scripts/testbed/debian-image.sh").to_string_lossy(), &[BASE_IMAGE], &[]);
    // A build context of the Containerfile and the binary where the prebuilt stage expects it.
    let ctx = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    std::fs::copy(repo().join("Containerfile"), ctx.path().join("Containerfile")).expect("Containerfile");
    let dest = ctx.path().join("target/release/glasscast");
    std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
    std::fs::hard_link(binary, &dest).or_else(|_| std::fs::copy(binary, &dest).map(drop)).expect("binary");
    let ctx_path = ctx.path().to_str().expect("utf-8");
    let base = format!("BASE={BASE_IMAGE}");
    // --format docker: the OCI format has no HEALTHCHECK.
    let args = ["build", "--format", "docker", "--build-arg", &base, "--target"];
    podman(&[&args[..], &["runtime", "-t", RUNTIME_CACHE, ctx_path]].concat());
    let before = image_ids();
    podman(&[&args[..], &["prebuilt", "-t", tag, ctx_path]].concat());
    image_ids().into_iter().filter(|id| !before.contains(id)).collect()
}

/// A compose project of compose.yaml, brought up; `down -v` and the images it was built from go when dropped.
struct Project {
    name: String,
    env: Vec<(&'static str, String)>,
    images: Vec<String>,
    up: bool,
    /// An override file on top of compose.yaml (`compose.bridge.yaml`).
    extra: Option<&'static str>,
}

impl Project {
    fn up(name: String, env: Vec<(&'static str, String)>, images: Vec<String>) -> Self {
        Self::up_with(name, env, images, None)
    }

    fn up_with(
        name: String,
        env: Vec<(&'static str, String)>,
        images: Vec<String>,
        extra: Option<&'static str>,
    ) -> Self {
        let project = Self { name, env, images, up: true, extra };
        project.spawn_reaper();
        project.compose(&["up", "-d"]);
        project
    }

    fn compose_args<'a>(&'a self, file: &'a str, args: &[&'a str]) -> Vec<&'a str> {
        [&["-p", self.name.as_str(), "-f", file][..], args].concat()
    }

    fn compose(&self, args: &[&str]) -> String {
        let file = repo().join("compose.yaml");
        let mut all = self.compose_args(file.to_str().expect("utf-8"), &[]);
        let extra = self.extra.as_ref().map(|f| repo().join(f));
        if let Some(extra) = &extra {
            all.extend(["-f", extra.to_str().expect("utf-8")]);
        }
        all.extend_from_slice(args);
        run("podman-compose", &all, &self.env)
    }

    fn down(&mut self) {
        if std::mem::take(&mut self.up) {
            self.compose(&["down", "-v"]);
        }
    }

    /// Backstop for a test process that aborts instead of unwinding (a panic on a GStreamer thread) or is
    /// killed, so never drops this: a shell waits for the process to end, then does what `drop` does. Its own
    /// process group, so a signal to the test's group (`timeout`, Ctrl-C) does not take it along.
    #[allow(clippy::zombie_processes, reason = "it outlives this process by design: it only exits after it")]
    fn spawn_reaper(&self) {
        const REAPER: &str = concat!(
            r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done; "#,
            r#"podman-compose -p "$2" -f "$3" down -v; shift 3; for i; do podman rmi "$i"; done"#,
        );
        let file = repo().join("compose.yaml");
        let pid = std::process::id().to_string();
        let reaper = Command::new("sh")
            .args(["-c", REAPER, "reaper", &pid, &self.name, file.to_str().expect("utf-8")])
            .args(&self.images)
            .env("CONTAINERS_CONF", repo().join("scripts/testbed/containers.conf"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        reaper.expect("sh runs");
    }

    fn container(&self) -> String {
        let label = format!("label=io.podman.compose.project={}", self.name);
        let ids = podman(&["ps", "--all", "--quiet", "--filter", &label]);
        ids.lines().next().unwrap_or_else(|| panic!("no container in project {}", self.name)).to_owned()
    }

    /// What is left of the project: containers, networks and volumes with its label, and its pod.
    fn leftovers(&self) -> String {
        let label = format!("label=io.podman.compose.project={}", self.name);
        let mut left = String::new();
        left += &podman(&["container", "ls", "--all", "--quiet", "--filter", &label]);
        left += &podman(&["network", "ls", "--quiet", "--filter", &label]);
        left += &podman(&["volume", "ls", "--quiet", "--filter", &label]);
        if try_run("podman", &["pod", "exists", &format!("pod_{}", self.name)], &[]).status.success() {
            left += "its pod\n";
        }
        left
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        // No panics here (a second panic while a failed assertion unwinds aborts): outcomes are ignored.
        let file = repo().join("compose.yaml");
        if self.up {
            let mut args =
                self.compose_args(&file.to_string_lossy(), &[]).iter().map(|s| s.to_string()).collect::<Vec<_>>();
            if let Some(extra) = self.extra {
                args.extend(["-f".to_owned(), repo().join(extra).to_string_lossy().into_owned()]);
            }
            args.extend(["down".to_owned(), "-v".to_owned()]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let _ = try_run("podman-compose", &args, &self.env);
        }
        // Newest first: the test image, then the stage images it was made with.
        for id in &self.images {
            let _ = try_run("podman", &["rmi", id], &[]);
        }
    }
}

fn free_port(udp: bool) -> u16 {
    let port = if udp {
        std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| s.local_addr())
    } else {
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr())
    };
    port.expect("a free port").port()
}

/// A configuration directory holding `toml` as glasscast.toml, readable by the container's uid.
fn config_dir(toml: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let config = tempfile::tempdir().expect("config dir");
    std::fs::write(config.path().join("glasscast.toml"), toml).expect("config");
    std::fs::set_permissions(config.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(config.path().join("glasscast.toml"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    config
}

/// Polls `f` every 250 ms for up to `secs` seconds.
async fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..secs * 4 {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    f()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_image_runs_under_compose_plays_over_whep_and_leaves_nothing_behind() {
    let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    if !os.contains("VERSION_CODENAME=bookworm") || !root {
        eprintln!("skipped: needs root on Debian 12 (the image is Debian 12 and the host-built binary goes in it)");
        return;
    }
    init();
    let id = std::process::id();
    let tag = format!("localhost/glasscast:test-{id}");
    let images = tokio::task::block_in_place(|| build_image(&tag, Path::new(env!("CARGO_BIN_EXE_glasscast"))));

    // A small test stream on ports nobody else uses (tests run side by side; host networking).
    let (port, mux_port, metrics_port) = (free_port(false), free_port(true), free_port(false));
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[webrtc]\nmux_port = {mux_port}\n[auth]\nadmin_token = \"{ADMIN}\"\n\
         [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\
         [[streams]]\nname = \"main\"\nwidth = 320\nheight = 240\nbitrate_kbps = 600\n"
    );
    let config = config_dir(&toml);
    let base = format!("https://127.0.0.1:{port}");
    let env = vec![
        ("GLASSCAST_IMAGE", tag.clone()),
        ("GLASSCAST_CONFIG_DIR", config.path().to_str().expect("utf-8").to_owned()),
        ("GLASSCAST_HEALTHCHECK_URL", format!("{base}/healthz")),
    ];
    let mut project = Project::up(format!("glasscasttest{id}"), env, images);
    let c = project.container();

    // Healthy (podman runs the image's HEALTHCHECK; periodic runs need systemd, so run it here).
    let healthy = wait_for(60, || try_run("podman", &["healthcheck", "run", &c], &[]).status.success()).await;
    assert!(healthy, "never healthy; logs:\n{}", run("podman", &["logs", &c], &[]));
    assert_eq!(podman(&["inspect", "--format", "{{.State.Health.Status}}", &c]).trim(), "healthy");
    assert_eq!(podman(&["exec", &c, "id", "-u"]).trim(), "10001", "runs as the image's user");
    assert_ne!(podman(&["exec", &c, "cat", "/proc/1/comm"]).trim(), "glasscast", "an init is PID 1");
    // Least privilege (compose.yaml): no capabilities, no new privileges, a read-only root but /tmp.
    let status = podman(&["exec", &c, "grep", "-E", "^(CapEff|CapBnd|NoNewPrivs):", "/proc/1/status"]);
    assert!(status.contains("CapEff:\t0000000000000000") && status.contains("CapBnd:\t0000000000000000"), "{status}");
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    assert_eq!(podman(&["inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", &c]).trim(), "true");
    assert!(!try_run("podman", &["exec", &c, "touch", "/usr/local/bin/x"], &[]).status.success(), "root is read-only");
    assert!(try_run("podman", &["exec", &c, "touch", "/tmp/x"], &[]).status.success(), "/tmp is writable");

    // The operator's way to a viewer link: the CLI inside the container (config and state are there).
    let issued = podman(&["exec", &c, "glasscast", "token", "issue", "--stream", "main", "--label", "container"]);
    let link = issued.lines().find(|l| l.starts_with(&format!("{base}/watch/main#token="))).expect("a link");
    let token = link.split_once("#token=").expect("token").1.to_owned();

    let cert = podman(&["exec", &c, "cat", "/var/lib/glasscast/tls/cert.pem"]);
    let http = remote::client_trusting(cert.as_bytes());
    let ready = async {
        for _ in 0..100 {
            let r = http.get(format!("{base}/readyz")).bearer_auth(ADMIN).send().await;
            if r.is_ok_and(|r| r.status() == 200) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    };
    assert!(ready.await, "/readyz never said ready");
    let mut v = WebrtcbinViewer::new(96, "42e01f", true);
    remote::connect(&mut v, &http, &base, "main", Some(&token)).await;
    assert!(v.gets_frames(30, 20).await, "frames from the container");
    let size = *v.size.lock().expect("lock");
    assert_eq!(size, Some((320, 240)), "the configured size");
    assert!(eventually(10, || v.audio() > 10).await, "audio from the container");
    // Its metrics listener (host networking: on the host's loopback) counts the viewer.
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics")).await.expect("scrape");
    let metrics = metrics.text().await.expect("metrics");
    assert!(metrics.contains("glasscast_sessions{stream=\"main\",state=\"connected\"} 1"), "{metrics}");
    v.stop();

    // SIGTERM reaches glasscast through the init, and it stops gracefully.
    project.compose(&["stop"]);
    assert_eq!(podman(&["inspect", "--format", "{{.State.ExitCode}}", &c]).trim(), "0", "exit code after stop");

    project.down();
    let left = project.leftovers();
    assert!(left.is_empty(), "left behind by `down -v`:\n{left}");
    plays_on_a_bridge_network(&tag, config.path(), id).await;
    casts_the_screen_with_only_the_bus_and_pulse_of_the_runtime_dir(&tag, id).await;
}

/// compose.bridge.yaml: the same image on a bridge network with published ports, the host's address (here
/// its loopback, where the ports are published) announced and the container's own hidden. A viewer on the
/// host plays through the published UDP port, and the answer names nothing but the advertised address.
async fn plays_on_a_bridge_network(tag: &str, config: &Path, id: u32) {
    let (https, media) = (free_port(false), free_port(true));
    let env = vec![
        ("GLASSCAST_IMAGE", tag.to_owned()),
        ("GLASSCAST_CONFIG_DIR", config.to_str().expect("utf-8").to_owned()),
        ("GLASSCAST_HTTPS_PORT", https.to_string()),
        ("GLASSCAST_MEDIA_PORT", media.to_string()),
        ("GLASSCAST_ADVERTISE", format!("127.0.0.1:{media}")),
    ];
    let mut project = Project::up_with(format!("glasscastbridge{id}"), env, Vec::new(), Some("compose.bridge.yaml"));
    let c = project.container();
    let healthy = wait_for(60, || try_run("podman", &["healthcheck", "run", &c], &[]).status.success()).await;
    assert!(healthy, "never healthy; logs:\n{}", run("podman", &["logs", &c], &[]));
    let issued = podman(&["exec", &c, "glasscast", "token", "issue", "--stream", "main"]);
    let token = issued.lines().find_map(|l| l.split_once("/watch/main#token=")).expect("a link").1.to_owned();
    let cert = podman(&["exec", &c, "cat", "/var/lib/glasscast/tls/cert.pem"]);
    let http = remote::client_trusting(cert.as_bytes());
    let base = format!("https://127.0.0.1:{https}");
    let mut v = WebrtcbinViewer::new(96, "42e01f", true);
    let answer = remote::connect(&mut v, &http, &base, "main", Some(&token)).await;
    let candidates: Vec<&str> = answer.lines().filter(|l| l.starts_with("a=candidate:")).collect();
    assert!(
        !candidates.is_empty() && candidates.iter().all(|c| c.contains(&format!(" 127.0.0.1 {media} "))),
        "only the advertised address:\n{answer}"
    );
    assert!(
        v.gets_frames(30, 20).await,
        "frames through the published port; logs:\n{}",
        run("podman", &["logs", &c], &[])
    );
    v.stop();
    project.down();
}

/// compose.portal.yaml, rootful (`GLASSCAST_USERNS=host`) as the headless Wayland session's user (uid
/// 65534, scripts/testbed/wayland-session.sh): of the session's runtime directory only the bus socket and
/// `pulse/` are in the container (a file of another program's is not), and the portal's screen cast
/// reaches glasscast through them: the stream is ready with the screen's frames and a viewer plays it.
async fn casts_the_screen_with_only_the_bus_and_pulse_of_the_runtime_dir(tag: &str, id: u32) {
    let wl = testbed::Testbed::start("wayland-session.sh", "gc-wlc.", &[]);
    let run_dir = format!("{}/run", wl.dir);
    let session = |p: &str| std::os::unix::fs::chown(p, Some(65534), Some(65534)).expect("chown");
    std::fs::create_dir_all(format!("{run_dir}/pulse")).expect("pulse dir");
    session(&format!("{run_dir}/pulse"));
    std::fs::write(format!("{run_dir}/another-programs-secret"), "x").expect("a file of another program");
    let state = tempfile::tempdir().expect("state");
    session(state.path().to_str().expect("utf-8"));
    let (https, media) = (free_port(false), free_port(true));
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:{https}\"\n[webrtc]\nmux_port = {media}\n[auth]\nmode = \"disabled\"\n\
         [metrics]\nenabled = false\n[[streams]]\nname = \"desk\"\nsource = \"portal\"\naudio = \"none\"\n\
         width = 640\nheight = 360\n"
    );
    let config = config_dir(&toml);
    let base = format!("https://127.0.0.1:{https}");
    let env = vec![
        ("GLASSCAST_IMAGE", tag.to_owned()),
        ("GLASSCAST_CONFIG_DIR", config.path().to_str().expect("utf-8").to_owned()),
        ("GLASSCAST_HEALTHCHECK_URL", format!("{base}/healthz")),
        ("GLASSCAST_STATE_DIR", state.path().to_str().expect("utf-8").to_owned()),
        ("GLASSCAST_USERNS", "host".to_owned()),
        ("UID", "65534".to_owned()),
        ("GID", "65534".to_owned()),
        ("HOME", format!("{}/home", wl.dir)),
        ("XDG_RUNTIME_DIR", run_dir.clone()),
        ("DBUS_SESSION_BUS_ADDRESS", format!("unix:path={run_dir}/bus")),
    ];
    let mut project = Project::up_with(format!("glasscastportal{id}"), env, Vec::new(), Some("compose.portal.yaml"));
    let c = project.container();
    let inside = podman(&["exec", &c, "ls", "-A", &run_dir]);
    assert_eq!(inside.split_whitespace().collect::<Vec<_>>(), ["bus", "pulse"], "only these of {run_dir}");
    let cert_path = state.path().join("tls/cert.pem");
    let up = wait_for(30, || cert_path.exists()).await;
    assert!(up, "no certificate; logs:\n{}", run("podman", &["logs", &c], &[]));
    let http = remote::client_trusting(&std::fs::read(&cert_path).expect("cert"));
    let mut ready = serde_json::Value::Null;
    for _ in 0..120 {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            ready = serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or_default();
            if ready["ready"] == true {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        ready["ready"],
        true,
        "the portal stream never got ready: {ready}\n{}",
        run("podman", &["logs", &c], &[])
    );
    let mut v = WebrtcbinViewer::new(96, "42e01f", false);
    remote::connect(&mut v, &http, &base, "desk", None).await;
    assert!(v.gets_frames(10, 20).await, "the screen from the container");
    assert!(testbed::sees_a_picture(&v, 10).await, "not the screen's picture: {:?}", v.luma_range);
    v.stop();
    project.down();
    drop(wl);
}
