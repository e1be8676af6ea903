//! One load run: ramp the viewers in, wait until they have settled, measure for the window, DELETE the
//! sessions, collect the numbers.
//!
//! Threads: the main thread schedules; `--http-threads` threads do the blocking HTTP (build offer, POST,
//! apply answer, PATCH, DELETE) and hand each ready viewer to a worker; `--threads` workers drive the
//! viewers (see `driver`).

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::Url;

use crate::cli::Args;
use crate::driver::{Command, WorkerHandle, WorkerSender};
use crate::stats::{self, Aggregate, HttpInfo, Output, ServerUsage, ViewerRecord};
use crate::viewer::{Prepared, Progress, Stage, ViewerSettings, progress};
use crate::whep::{PostOutcome, Whep};

enum Job {
    Start(usize),
    Delete(usize, Url),
}

enum HttpResult {
    Started { idx: usize, info: HttpInfo, location: Option<Url> },
    Deleted { idx: usize, result: String, ok: bool },
}

/// What the run produced; `reached_server` is false when no request got any HTTP answer.
pub struct RunResult {
    pub output: Output,
    pub reached_server: bool,
}

fn log(args: &Args, msg: impl AsRef<str>) {
    if args.verbose {
        eprintln!("glasscast-loadclient: {}", msg.as_ref());
    }
}

pub fn run(args: &Args, whep: Whep, settings: ViewerSettings) -> anyhow::Result<RunResult> {
    let n = args.viewers;
    let settings = Arc::new(settings);
    let progress: Progress = Arc::new((0..n).map(|_| AtomicU8::new(progress::WAITING)).collect());

    let workers = (0..args.threads)
        .map(|i| WorkerHandle::spawn(i, Duration::from_millis(args.coalesce_ms)))
        .collect::<Result<Vec<_>, _>>()
        .context("starting worker threads")?;
    let senders: Arc<Vec<WorkerSender>> = Arc::new(workers.iter().map(|w| w.sender()).collect());

    let (job_tx, job_rx) = channel::<Job>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (res_tx, res_rx) = channel::<HttpResult>();
    for i in 0..args.http_threads.min(n.max(1)) {
        let ctx = HttpCtx {
            jobs: job_rx.clone(),
            results: res_tx.clone(),
            whep: whep.clone(),
            settings: settings.clone(),
            progress: progress.clone(),
            workers: senders.clone(),
            trickle: !args.no_trickle,
            dump_sdp: args.dump_sdp,
        };
        std::thread::Builder::new()
            .name(format!("http-{i}"))
            .spawn(move || ctx.serve())
            .context("starting HTTP threads")?;
    }
    drop(res_tx);

    let mut infos: Vec<Option<HttpInfo>> = vec![None; n];
    let mut locations: Vec<Option<Url>> = vec![None; n];
    // Ramp.
    let t_first = Instant::now();
    let ramp = Duration::from_millis(args.ramp_ms);
    log(args, format!("starting {n} viewers, {} ms apart", args.ramp_ms));
    for i in 0..n {
        let at = t_first + ramp * i as u32;
        while let Some(wait) = at.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
            match res_rx.recv_timeout(wait) {
                Ok(r) => take(r, &mut infos, &mut locations),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => std::thread::sleep(wait),
            }
        }
        if job_tx.send(Job::Start(i)).is_err() {
            anyhow::bail!("the HTTP threads are gone");
        }
    }

    // Settle: every viewer has its first video frame, or failed, or ran out of time.
    let settle_cap = Instant::now() + args.http_timeout() + args.connect_timeout() + Duration::from_secs(5);
    loop {
        let settled = progress.iter().filter(|p| progress::settled(p.load(Ordering::Relaxed))).count();
        if settled == n {
            break;
        }
        if Instant::now() >= settle_cap {
            log(args, format!("only {settled}/{n} viewers settled; measuring anyway"));
            break;
        }
        if let Ok(r) = res_rx.recv_timeout(Duration::from_millis(20)) {
            take(r, &mut infos, &mut locations);
        }
    }

    // The window.
    let window_start_s = t_first.elapsed().as_secs_f64();
    let media = progress.iter().filter(|p| p.load(Ordering::Relaxed) == progress::MEDIA).count();
    log(args, format!("{media}/{n} viewers receiving video; measuring {} s", args.duration));
    let server_before = args.server_pid.and_then(stats::proc_sample);
    let cpu_before = stats::client_cpu();
    let w_start = Instant::now();
    workers.iter().for_each(|w| {
        w.send(Command::WindowStart);
    });
    // Nothing to measure when every viewer failed for good (e.g. all refused): no point waiting.
    let any_alive = progress.iter().any(|p| p.load(Ordering::Relaxed) != progress::FAILED);
    let w_end = if any_alive { w_start + args.duration() } else { w_start };
    while let Some(wait) = w_end.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
        if let Ok(r) = res_rx.recv_timeout(wait) {
            take(r, &mut infos, &mut locations);
        }
    }
    workers.iter().for_each(|w| {
        w.send(Command::WindowEnd);
    });
    let window_s = w_start.elapsed().as_secs_f64();
    let cpu_window = stats::client_cpu().saturating_sub(cpu_before);
    let server = args.server_pid.map(|pid| {
        let after = stats::proc_sample(pid);
        ServerUsage {
            pid,
            cpu_pct: server_before
                .zip(after)
                .map(|(b, a)| stats::round3(a.cpu.saturating_sub(b.cpu).as_secs_f64() / window_s * 100.0)),
            rss_mb: after.and_then(|a| a.rss_kb).map(|kb| stats::round3(kb as f64 / 1024.0)),
            threads: after.and_then(|a| a.threads),
        }
    });

    // Every POST must have come back before we can DELETE what it created.
    let posts_cap = Instant::now() + args.http_timeout() + Duration::from_secs(2);
    while infos.iter().any(Option::is_none) && Instant::now() < posts_cap {
        if let Ok(r) = res_rx.recv_timeout(Duration::from_millis(50)) {
            take(r, &mut infos, &mut locations);
        }
    }

    // DELETE the sessions while the viewers still run, then stop the viewers.
    let to_delete: Vec<(usize, Url)> =
        locations.iter().enumerate().filter_map(|(i, l)| Some((i, l.clone()?))).collect();
    log(args, format!("deleting {} sessions", to_delete.len()));
    let mut pending = 0usize;
    for (idx, url) in to_delete {
        if job_tx.send(Job::Delete(idx, url)).is_ok() {
            pending += 1;
        }
    }
    let deletes_cap = Instant::now() + args.http_timeout() * 2 + Duration::from_secs(10);
    while pending > 0 && Instant::now() < deletes_cap {
        match res_rx.recv_timeout(Duration::from_millis(50)) {
            Ok(r) => {
                if matches!(r, HttpResult::Deleted { .. }) {
                    pending -= 1;
                }
                take(r, &mut infos, &mut locations);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    drop(job_tx);
    let mut reports: Vec<Option<crate::viewer::Report>> = vec![None; n];
    for w in workers {
        for r in w.finish() {
            if let Some(slot) = reports.get_mut(r.idx) {
                *slot = Some(r);
            }
        }
    }
    let client_cpu = stats::client_cpu();

    let reached_server = infos.iter().flatten().any(|i| i.post_status.is_some());
    let records: Vec<ViewerRecord> = (0..n)
        .map(|i| {
            let info = infos[i].clone().unwrap_or_else(|| HttpInfo {
                failure: Some((Stage::Post, "no answer to the POST before the end of the run".into())),
                ..HttpInfo::default()
            });
            ViewerRecord::build(i, &info, reports[i].as_ref(), window_s, args.expect_fps)
        })
        .collect();
    let output = Aggregate {
        url: whep.url().as_str(),
        viewers: n,
        window_s,
        window_start_s,
        expect_fps: args.expect_fps,
        client_cpu_s: client_cpu.as_secs_f64(),
        client_cpu_window_s: cpu_window.as_secs_f64(),
        server,
        per_viewer: args.per_viewer,
    }
    .output(records);
    Ok(RunResult { output, reached_server })
}

/// Files an HTTP thread's result.
fn take(r: HttpResult, infos: &mut [Option<HttpInfo>], locations: &mut [Option<Url>]) {
    match r {
        HttpResult::Started { idx, info, location } => {
            infos[idx] = Some(info);
            locations[idx] = location;
        }
        HttpResult::Deleted { idx, result, ok } => {
            if let Some(info) = infos[idx].as_mut() {
                info.delete = Some(result);
                info.delete_ok = ok;
            }
        }
    }
}

/// An HTTP thread's view of the run.
struct HttpCtx {
    jobs: Arc<Mutex<Receiver<Job>>>,
    results: Sender<HttpResult>,
    whep: Whep,
    settings: Arc<ViewerSettings>,
    progress: Progress,
    workers: Arc<Vec<WorkerSender>>,
    trickle: bool,
    dump_sdp: bool,
}

impl HttpCtx {
    fn serve(self) {
        loop {
            let job = match self.jobs.lock() {
                Ok(rx) => rx.recv(),
                Err(_) => return,
            };
            let result = match job {
                Ok(Job::Start(idx)) => self.start(idx),
                Ok(Job::Delete(idx, url)) => match self.whep.delete(&url) {
                    Ok(status) => {
                        HttpResult::Deleted { idx, result: status.to_string(), ok: (200..300).contains(&status) }
                    }
                    Err(e) => HttpResult::Deleted { idx, result: e, ok: false },
                },
                Err(_) => return,
            };
            if self.results.send(result).is_err() {
                return;
            }
        }
    }

    fn set(&self, idx: usize, state: u8) {
        if let Some(p) = self.progress.get(idx) {
            p.store(state, Ordering::Relaxed);
        }
    }

    fn start(&self, idx: usize) -> HttpResult {
        self.set(idx, progress::POSTING);
        let mut info = HttpInfo::default();
        let failed = |mut info: HttpInfo, stage: Stage, error: String, location: Option<Url>| {
            self.set(idx, progress::FAILED);
            info.failure = Some((stage, error));
            HttpResult::Started { idx, info, location }
        };
        let prepared = match Prepared::new(&self.settings) {
            Ok(p) => p,
            Err(e) => return failed(info, Stage::Post, format!("client could not make an offer: {e}"), None),
        };
        let t0 = Instant::now();
        let created = match self.whep.post_offer(&prepared.offer) {
            Err(e) => return failed(info, Stage::Post, e, None),
            Ok(PostOutcome::Refused { status, message }) => {
                info.post_status = Some(status);
                info.post_ms = Some(stats::round3(t0.elapsed().as_secs_f64() * 1000.0));
                return failed(info, Stage::Post, format!("HTTP {status}: {message}"), None);
            }
            Ok(PostOutcome::Created(c)) => c,
        };
        let post = t0.elapsed();
        if self.dump_sdp && idx == 0 {
            eprintln!("--- offer (viewer 0)\n{}--- answer (viewer 0)\n{}", prepared.offer, created.answer);
        }
        info.post_status = Some(201);
        info.post_ms = Some(stats::round3(post.as_secs_f64() * 1000.0));
        let location = Some(created.location.clone());
        let (viewer, frag) = match prepared.accept(idx, &created.answer, t0, &self.settings, self.progress.clone()) {
            Ok(v) => v,
            Err(e) => return failed(info, Stage::Answer, e, location),
        };
        let worker = &self.workers[idx % self.workers.len()];
        if !worker.send(Command::Add(Box::new(viewer))) {
            return failed(info, Stage::Ice, "worker thread is gone".into(), location);
        }
        if let (Some(frag), true) = (&frag, self.dump_sdp && idx == 0) {
            eprintln!("--- trickle fragment (viewer 0)\n{frag}");
        }
        if let (Some(frag), true) = (frag, self.trickle) {
            info.patch = Some(match self.whep.patch(&created.location, created.etag.as_deref(), &frag) {
                Ok((status, msg)) if msg.is_empty() => status.to_string(),
                Ok((status, msg)) => format!("{status}: {msg}"),
                Err(e) => e,
            });
        }
        HttpResult::Started { idx, info, location }
    }
}
