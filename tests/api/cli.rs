//! The admin CLI against a running server over HTTPS, the way an operator uses it on another machine:
//! `--server`, `--admin-token` and `--fingerprint` (the self-signed certificate pinned, not ignored).

use crate::common;

use common::*;
use glasscast::config::{Config, StreamConfig};

const ADMIN: &str = "cli-admin-token-0123456789";

fn glasscast(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_glasscast"))
        .args(args)
        .env_remove("GLASSCAST_CONFIG")
        .output()
        .expect("the glasscast binary runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_issue_list_revoke_and_streams_against_a_pinned_server() {
    let mut cfg = Config::default();
    cfg.auth.admin_token = Some(ADMIN.into());
    cfg.streams = vec![small_stream("main")];
    let srv = start_as_configured(cfg).await;
    let fp = srv.server.tls.as_ref().expect("HTTPS").fingerprint.clone();
    let target = ["--server", srv.base.as_str(), "--admin-token", ADMIN, "--fingerprint", fp.as_str()];
    let run = |args: &[&str]| {
        let all: Vec<&str> = args.iter().chain(target.iter()).copied().collect();
        tokio::task::block_in_place(|| glasscast(&all))
    };

    let out = run(&["token", "issue", "--stream", "main", "--ttl", "30m", "--label", "kitchen tablet"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let link = text.lines().find(|l| l.starts_with(&srv.base)).expect("a link line").to_owned();
    assert!(link.starts_with(&format!("{}/watch/main#token=", srv.base)), "{link}");
    assert!(text.contains('█') || text.contains('▀') || text.contains('▄'), "a QR code is printed:\n{text}");
    let id = text.lines().find_map(|l| l.strip_prefix("token id ")).and_then(|r| r.split_whitespace().next());
    let id = id.expect("the token id is printed").to_owned();

    // The issued token plays.
    let token = link.split_once("#token=").expect("fragment").1;
    let mut v = WebrtcbinViewer::new(96, "42e01f", true);
    v.connect_with(&srv, "main", Some(token)).await;
    assert!(v.gets_frames(10, 20).await, "the CLI's token plays");

    let out = run(&["token", "list"]);
    let list = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(list.lines().any(|l| l.contains(&id) && l.contains("kitchen tablet") && l.contains("valid")), "{list}");
    assert!(!list.contains(token), "list never shows tokens");

    let out = run(&["sessions"]);
    let sessions = String::from_utf8_lossy(&out.stdout).to_string();
    let sid = session_of(&v).to_string();
    assert!(sessions.lines().any(|l| l.starts_with(&sid) && l.contains("kitchen tablet")), "{sessions}");

    let out = run(&["streams"]);
    let streams = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(streams.lines().any(|l| l.starts_with("main") && l.contains("playing")), "{streams}");

    // The admin console's link: the admin token in its fragment, encoded so the page reads it back as it is.
    let out = run(&["admin-link"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{}/admin#token={ADMIN}", srv.base));
    let out = tokio::task::block_in_place(|| {
        glasscast(&["admin-link", "--server", "https://h:8443/", "--admin-token", "a+b/c&d"])
    });
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "https://h:8443/admin#token=a%2Bb%2Fc%26d");

    // kick ends the session; the token still works for a new one.
    let out = run(&["kick", &sid]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(srv.session_ends(session_of(&v), 5).await, "kicked");
    let mut v = WebrtcbinViewer::new(96, "42e01f", true);
    v.connect_with(&srv, "main", Some(token)).await;

    let out = run(&["token", "revoke", &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["token", "list"]);
    let list = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(list.lines().any(|l| l.contains(&id) && l.contains("revoked")), "{list}");
    assert!(srv.session_ends(session_of(&v), 5).await, "the revoked token's session ended");

    // stop ends the stream's sessions and new viewers get 409; start brings it back.
    let out = run(&["stream", "stop", "main"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let offer = WebrtcbinViewer::new(96, "42e01f", true).offer().await;
    assert_eq!(srv.post_offer_with("main", &offer, Some(ADMIN)).await.status(), 409);
    let out = run(&["stream", "start", "main"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    srv.wait_ready().await;
    let mut again = WebrtcbinViewer::new(96, "42e01f", true);
    again.connect_with(&srv, "main", Some(ADMIN)).await;
    assert!(again.gets_frames(10, 20).await, "the restarted stream plays");

    // Signing keys: list, rotate (old tokens keep working), rotate and retire (they stop).
    let out = run(&["key", "list"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("yes")).count(), 1);
    let kept = run(&["token", "issue", "--stream", "main"]);
    let kept = String::from_utf8_lossy(&kept.stdout).lines().find(|l| l.contains("#token=")).expect("link").to_owned();
    let kept_token = kept.split("#token=").nth(1).expect("token").to_owned();
    let out = run(&["key", "rotate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let key_lines = text.lines().filter(|l| l.get(..8).is_some_and(|k| k.chars().all(|c| c.is_ascii_hexdigit())));
    assert_eq!(key_lines.count(), 2, "two keys after one rotation:\n{text}");
    let offer = WebrtcbinViewer::new(96, "42e01f", true).offer().await;
    assert_eq!(srv.post_offer_with("main", &offer, Some(&kept_token)).await.status(), 201, "kept");
    let out = run(&["key", "rotate", "--retire-previous"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("retired"), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(srv.post_offer_with("main", &offer, Some(&kept_token)).await.status(), 401, "retired");
    // One older key by id: `key retire` (the current one is refused with the server's reason).
    let current = srv.server.auth.keys().into_iter().find(|k| k.current).expect("a current key").kid;
    let refused = run(&["key", "retire", &current]);
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("rotate first"));
    run(&["key", "rotate"]);
    let out = run(&["key", "retire", &current]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(srv.server.auth.keys().len(), 1, "the older key is gone");

    // Another certificate (or a wrong pin) is refused, not ignored.
    let wrong = "AA:".repeat(31) + "AA";
    let out = tokio::task::block_in_place(|| {
        glasscast(&["token", "list", "--server", &srv.base, "--admin-token", ADMIN, "--fingerprint", &wrong])
    });
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fingerprint mismatch"), "{err}");
    // A wrong admin token is refused by the server, with its reason.
    let out = tokio::task::block_in_place(|| {
        glasscast(&[
            "token",
            "list",
            "--server",
            &srv.base,
            "--admin-token",
            "not-the-admin-token",
            "--fingerprint",
            &fp,
        ])
    });
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"), "{}", String::from_utf8_lossy(&out.stderr));
    srv.shutdown().await;
}

/// `glasscast recording start|list|get|delete|stop` against a pinned HTTPS server: a stream that was not
/// recording starts, its files are listed, one downloads whole (as it is on the server's disk, through a
/// `.part` file renamed at the end), one is deleted, and the stop finishes the file being written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recording_start_list_get_delete_and_stop_through_the_cli() {
    let mut cfg = Config::default();
    cfg.auth.admin_token = Some(ADMIN.into());
    let rec = tempfile::tempdir().expect("tempdir");
    let record =
        glasscast::config::RecordConfig { dir: Some(rec.path().to_owned()), segment_s: 2, ..Default::default() };
    cfg.streams = vec![StreamConfig { record, ..small_stream("main") }];
    let srv = start_as_configured(cfg).await;
    let fp = srv.server.tls.as_ref().expect("HTTPS").fingerprint.clone();
    let target = ["--server", srv.base.as_str(), "--admin-token", ADMIN, "--fingerprint", fp.as_str()];
    let run = |args: &[&str]| {
        let all: Vec<&str> = args.iter().chain(target.iter()).copied().collect();
        let out = tokio::task::block_in_place(|| glasscast(&all));
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(srv.server.sessions.readiness().await.streams[0].recording.is_none(), "not recording at start");
    run(&["recording", "start", "main"]);
    let done = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.ends_with(" done"))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    };
    let files =
        eventually_some(30, || async { Some(done(&run(&["recording", "list", "main"]))).filter(|f| f.len() >= 2) })
            .await;
    let files = files.expect("two finished files listed");
    let out = tempfile::tempdir().expect("out dir");
    let dest = out.path().join("got.mp4");
    let printed = run(&["recording", "get", "main", &files[0], "--output", dest.to_str().expect("utf-8")]);
    assert!(printed.contains("bytes"), "{printed}");
    assert_eq!(std::fs::read(&dest).expect("downloaded"), std::fs::read(rec.path().join(&files[0])).expect("on disk"));
    assert!(!out.path().join("got.mp4.part").exists());
    run(&["recording", "delete", "main", &files[1]]);
    assert!(!rec.path().join(&files[1]).exists());
    run(&["recording", "stop", "main"]);
    let status = srv.server.sessions.readiness().await.streams[0].recording.clone().expect("status");
    assert_eq!(status.state, "stopped", "{status:?}");
    assert!(status.current_file.is_none(), "{status:?}");
}
