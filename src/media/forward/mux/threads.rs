//! Starting the mux threads: one channel and `mio::Poll` each, the sockets read by the first and shared
//! for sending with the others, one route table for all.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc::channel;
use std::thread::JoinHandle;
use std::time::Instant;

use mio::{Interest, Poll, Token, Waker};
use tokio::sync::mpsc::UnboundedSender;

use super::{LOSS_REPORT_EVERY, Mux, MuxSender, WAKER};
use crate::media::MediaEvent;
use crate::media::forward::liveness::{self, Heartbeat, SendLag};
use crate::media::forward::relay::SharedStatus;
use crate::media::forward::route::SharedRoutes;
use crate::media::forward::send::{SendBatch, SendCounters};
use crate::media::forward::tcp::{TcpCounters, TcpMux};
use crate::media::forward::timers::Timers;
use crate::media::forward::udp::{MediaSocket, RecvBufs};

/// One mux thread as the transport holds it.
pub(crate) struct Shard {
    pub tx: MuxSender,
    pub lag: Arc<SendLag>,
    pub heartbeat: Arc<Heartbeat>,
    /// Viewers given to it and not yet gone (counted up by the transport when it picks the thread, down by
    /// the thread when the viewer goes).
    pub load: Arc<AtomicUsize>,
    pub thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

/// What every mux thread is started with.
pub(crate) struct Setup {
    pub threads: usize,
    pub sockets: Vec<MediaSocket>,
    pub tcp_listener: Option<std::net::TcpListener>,
    /// ICE-TCP connections one client address may hold (`webrtc.ice_tcp_per_address`).
    pub tcp_per_address: usize,
    pub tcp_counters: Arc<TcpCounters>,
    pub events: UnboundedSender<MediaEvent>,
    pub relay_status: SharedStatus,
    pub gso: bool,
    /// `sendmmsg` across viewers (`webrtc.udp_mmsg`).
    pub mmsg: bool,
    pub sends: Arc<SendCounters>,
}

/// Starts `setup.threads` mux threads (at least one); the first reads the sockets.
pub(crate) fn spawn(setup: Setup) -> anyhow::Result<Vec<Shard>> {
    let n = setup.threads.max(1);
    let mut polls = Vec::with_capacity(n);
    let mut senders = Vec::with_capacity(n);
    for _ in 0..n {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = channel();
        senders.push(MuxSender { tx, waker });
        polls.push((poll, rx));
    }
    let senders: Arc<[MuxSender]> = senders.into();
    let routes = SharedRoutes::default();
    let Setup {
        mut sockets,
        mut tcp_listener,
        tcp_per_address,
        tcp_counters,
        events,
        relay_status,
        gso,
        mmsg,
        sends,
        ..
    } = setup;
    let mut clones = Vec::with_capacity(n - 1);
    for _ in 1..n {
        clones.push(sockets.iter().map(MediaSocket::try_clone).collect::<anyhow::Result<Vec<_>>>()?);
    }
    let mut shards = Vec::with_capacity(n);
    for (shard, (poll, rx)) in polls.into_iter().enumerate() {
        let mut own = if shard == 0 { std::mem::take(&mut sockets) } else { clones.remove(0) };
        if shard == 0 {
            for (i, s) in own.iter_mut().enumerate() {
                poll.registry().register(&mut s.socket, Token(i), Interest::READABLE)?;
            }
        }
        let listener = if shard == 0 { tcp_listener.take() } else { None };
        let tcp = TcpMux::new(listener, poll.registry(), tcp_per_address, tcp_counters.clone())?;
        let (lag, heartbeat, load) = (Arc::default(), Arc::default(), Arc::default());
        let mux = Mux {
            shard,
            shards: senders.clone(),
            load: Arc::clone(&load),
            poll,
            rx,
            recv: RecvBufs::new(&own),
            out: SendBatch::new(gso, mmsg, sends.clone()),
            sockets: own,
            tcp,
            events: events.clone(),
            streams: HashMap::new(),
            peers: HashMap::new(),
            routes: routes.clone(),
            timers: Timers::default(),
            next_loss_report: Instant::now() + LOSS_REPORT_EVERY,
            lag: Arc::clone(&lag),
            heartbeat: Arc::clone(&heartbeat),
            relay: None,
            relay_plan: Default::default(),
            relay_status: relay_status.clone(),
        };
        let name = if n == 1 { "glasscast-mux".to_owned() } else { format!("glasscast-mux{shard}") };
        let thread = std::thread::Builder::new().name(name).spawn(move || liveness::run_guarded(|| mux.run()))?;
        let tx = senders[shard].clone();
        shards.push(Shard { tx, lag, heartbeat, load, thread: std::sync::Mutex::new(Some(thread)) });
    }
    Ok(shards)
}
