//! kill -9 at any moment (issue 17): the real binary issues and revokes tokens and rotates keys through the
//! admin API as fast as it is asked, and creates its self-signed certificate at every start, while it is
//! killed at a different moment each round (during the start, or 30-600 ms into the requests). After each
//! kill it starts again from the same state directory: it must load, list every token whose issue was
//! answered, still list as revoked every token whose revocation was answered, and keep every key a rotation
//! answered with. 20 rounds here; `GLASSCAST_CRASH_ROUNDS` sets more (200 for the
//! issue's count).

use crate::common;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const ADMIN: &str = "crash-admin-token-0123456789";

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(config: &std::path::Path) -> Server {
    let child = Command::new(env!("CARGO_BIN_EXE_glasscast"))
        .args(["--config", config.to_str().expect("utf-8"), "serve"])
        .env_remove("GLASSCAST_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("glasscast starts");
    Server { child }
}

/// What the server answered, so must survive a crash.
#[derive(Default)]
struct Answered {
    issued: BTreeSet<String>,
    revoked: BTreeSet<String>,
    keys: BTreeSet<String>,
}

/// Issues, revokes and rotates as fast as the server answers, recording what it answered, until it dies.
async fn work(http: &reqwest::Client, base: &str, round: u64, done: &mut Answered) {
    for i in 0u64.. {
        let auth = format!("Bearer {ADMIN}");
        let step = (i + round) % 7;
        let ok = if step == 6 {
            let r = http.post(format!("{base}/api/v1/keys/rotate")).header("authorization", &auth).send().await;
            match r {
                Ok(r) if r.status() == 201 => {
                    let keys: serde_json::Value =
                        serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or_default();
                    // The answer is the key list after the rotation: all of them must be there after a crash.
                    done.keys.extend(
                        keys.as_array().into_iter().flatten().filter_map(|k| k["kid"].as_str().map(str::to_owned)),
                    );
                    true
                }
                _ => false,
            }
        } else if step % 3 == 2 && !done.issued.is_empty() {
            let id = done.issued.iter().nth((i as usize) % done.issued.len()).cloned().expect("an id");
            let r = http.delete(format!("{base}/api/v1/tokens/{id}")).header("authorization", &auth).send().await;
            let ok = r.is_ok_and(|r| r.status() == 204);
            if ok {
                done.revoked.insert(id);
            }
            ok
        } else {
            let body = serde_json::json!({ "stream": "main", "label": format!("round {round} #{i}") }).to_string();
            let r = http
                .post(format!("{base}/api/v1/tokens"))
                .header("authorization", &auth)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            match r {
                Ok(r) if r.status() == 201 => {
                    let t: serde_json::Value =
                        serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or_default();
                    done.issued.insert(t["id"].as_str().expect("an id").to_owned());
                    true
                }
                _ => false,
            }
        };
        if !ok {
            return;
        }
    }
}

/// The server's tokens (id -> revoked) and key ids, once it answers.
async fn state(http: &reqwest::Client, base: &str) -> (std::collections::BTreeMap<String, bool>, BTreeSet<String>) {
    let get = |path: &'static str| async move {
        for _ in 0..300 {
            if let Ok(r) = http.get(format!("{base}{path}")).bearer_auth(ADMIN).send().await
                && r.status() == 200
            {
                return serde_json::from_str::<serde_json::Value>(&r.text().await.expect("body")).expect("json");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{path} never answered after a restart: the state directory did not load");
    };
    let tokens = get("/api/v1/tokens").await;
    let tokens = tokens.as_array().expect("a list").iter();
    let tokens = tokens.map(|t| (t["id"].as_str().expect("id").to_owned(), t["revoked"] == true)).collect();
    let keys = get("/api/v1/keys").await;
    let keys = keys.as_array().expect("a list").iter().filter_map(|k| k["kid"].as_str().map(str::to_owned)).collect();
    (tokens, keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_at_any_moment_loses_no_answered_token_revocation_or_key() {
    common::init();
    let rounds: u64 = std::env::var("GLASSCAST_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let state_dir = dir.path().join("state");
    let config = dir.path().join("glasscast.toml");
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nstate_dir = \"{}\"\n[auth]\nadmin_token = \"{ADMIN}\"\nfailures_burst = 0\n\
         [metrics]\nenabled = false\n[webrtc]\nmux_port = 0\n[[streams]]\nname = \"main\"\nwidth = 160\nheight = 120\n",
        state_dir.display()
    );
    std::fs::write(&config, toml).expect("config");
    // The certificate changes every round (it is made again): trust whatever the server shows.
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let base = format!("https://127.0.0.1:{port}");
    let mut done = Answered::default();
    for round in 0..rounds {
        // The certificate is created at this start (a kill may land in the middle of it).
        let _ = std::fs::remove_dir_all(state_dir.join("tls"));
        let mut server = start(&config);
        let kill_after = Duration::from_millis(30 + (round * 7919) % 570);
        if round % 5 == 4 {
            // Killed while starting: certificate, keys and ledger being created or loaded.
            tokio::time::sleep(Duration::from_millis(round * 13 % 300)).await;
        } else {
            let (tokens, keys) = state(&http, &base).await;
            for id in &done.issued {
                assert!(tokens.contains_key(id), "round {round}: issued token {id} lost");
            }
            for id in &done.revoked {
                assert_eq!(tokens.get(id), Some(&true), "round {round}: the revocation of {id} was lost");
            }
            for k in &done.keys {
                assert!(keys.contains(k), "round {round}: key {k} lost");
            }
            let _ = tokio::time::timeout(kill_after, work(&http, &base, round, &mut done)).await;
        }
        server.child.kill().expect("kill -9");
        server.child.wait().expect("reaped");
    }
    // A last start: everything answered is there.
    let _server = start(&config);
    let (tokens, keys) = state(&http, &base).await;
    assert!(done.issued.len() >= 20, "the rounds issued tokens ({})", done.issued.len());
    assert!(!done.revoked.is_empty() && done.keys.len() >= 2, "the rounds revoked tokens and rotated keys");
    assert!(done.issued.iter().all(|id| tokens.contains_key(id)), "an issued token was lost");
    assert!(done.revoked.iter().all(|id| tokens.get(id) == Some(&true)), "a revocation was lost");
    assert!(done.keys.iter().all(|k| keys.contains(k)), "a key was lost");
    eprintln!(
        "{rounds} kills: {} tokens issued, {} revoked, {} keys",
        done.issued.len(),
        done.revoked.len(),
        done.keys.len()
    );
}
