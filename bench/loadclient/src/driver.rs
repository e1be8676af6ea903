//! Worker threads: each drives many viewers with one `mio::Poll` over their UDP sockets.
//!
//! The loop sleeps in `poll` until a socket is readable, a command arrives (through a `mio::Waker`), or the
//! earliest viewer deadline (str0m's `Output::Timeout`, or a connect deadline) is due. Readable sockets are
//! drained (edge-triggered) into their `Rtc`; due viewers get `Input::Timeout`. No busy waiting.
//!
//! Rounds of the loop are at least `--coalesce-ms` apart (default 2 ms): with hundreds of sockets each
//! receiving a packet every few milliseconds, waking per packet would cost more CPU than the work itself.
//! Packets wait in the kernel's socket buffers meanwhile; receive timestamps are taken when read.

use std::io;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token, Waker};

use crate::viewer::{Report, Viewer};

const WAKER: Token = Token(usize::MAX);
/// Big enough for any UDP datagram.
const RECV_BUF: usize = 65_536;

pub enum Command {
    Add(Box<Viewer>),
    WindowStart,
    WindowEnd,
    /// Close every viewer and return the reports.
    Stop,
}

/// The main thread's end of a worker.
pub struct WorkerHandle {
    tx: Sender<Command>,
    waker: Arc<Waker>,
    join: Option<JoinHandle<Vec<Report>>>,
}

impl WorkerHandle {
    /// `coalesce`: the shortest time between two rounds of the loop (see the module doc).
    pub fn spawn(id: usize, coalesce: Duration) -> io::Result<WorkerHandle> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = channel();
        let join = std::thread::Builder::new()
            .name(format!("viewers-{id}"))
            .spawn(move || Worker::new(poll, rx, coalesce).run())?;
        Ok(WorkerHandle { tx, waker, join: Some(join) })
    }

    /// A cloneable way to send commands (for the HTTP threads).
    pub fn sender(&self) -> WorkerSender {
        WorkerSender { tx: self.tx.clone(), waker: self.waker.clone() }
    }

    pub fn send(&self, cmd: Command) -> bool {
        self.sender().send(cmd)
    }

    /// Stops the worker and collects its viewers' reports.
    pub fn finish(mut self) -> Vec<Report> {
        self.send(Command::Stop);
        match self.join.take().map(|j| j.join()) {
            Some(Ok(reports)) => reports,
            _ => Vec::new(),
        }
    }
}

#[derive(Clone)]
pub struct WorkerSender {
    tx: Sender<Command>,
    waker: Arc<Waker>,
}

impl WorkerSender {
    /// False when the worker is gone.
    pub fn send(&self, cmd: Command) -> bool {
        self.tx.send(cmd).is_ok() && self.waker.wake().is_ok()
    }
}

struct Worker {
    poll: Poll,
    rx: Receiver<Command>,
    /// Slab: index = mio token.
    viewers: Vec<Box<Viewer>>,
    /// Whether each viewer's socket is still registered.
    registered: Vec<bool>,
    window_started: bool,
    window_ended: bool,
    coalesce: Duration,
}

impl Worker {
    fn new(poll: Poll, rx: Receiver<Command>, coalesce: Duration) -> Self {
        Worker {
            poll,
            rx,
            viewers: Vec::new(),
            registered: Vec::new(),
            window_started: false,
            window_ended: false,
            coalesce,
        }
    }

    fn run(mut self) -> Vec<Report> {
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; RECV_BUF];
        let mut last_round = Instant::now();
        loop {
            // Let datagrams gather in the socket buffers for a moment: one wake-up then serves many.
            if let Some(rest) = self.coalesce.checked_sub(last_round.elapsed()).filter(|d| !d.is_zero()) {
                std::thread::sleep(rest);
            }
            last_round = Instant::now();
            let timeout = self.next_wake().map(|at| at.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                eprintln!("glasscast-loadclient: poll failed: {e}");
                break;
            }
            let mut stop = false;
            for event in events.iter() {
                if event.token() == WAKER {
                    stop |= self.take_commands(&mut buf);
                } else if let Some(v) = self.viewers.get_mut(event.token().0) {
                    v.on_readable(&mut buf);
                }
            }
            if stop {
                break;
            }
            let now = Instant::now();
            for v in self.viewers.iter_mut() {
                if v.alive() && v.wake_at() <= now {
                    v.on_timeout(now);
                }
            }
            self.deregister_dead();
        }
        self.stop()
    }

    /// The earliest deadline among live viewers (`None`: sleep until a command comes).
    fn next_wake(&self) -> Option<Instant> {
        self.viewers.iter().filter(|v| v.alive()).map(|v| v.wake_at()).min()
    }

    /// Handles queued commands; true on `Stop`.
    fn take_commands(&mut self, buf: &mut [u8]) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(Command::Add(v)) => self.add(v, buf),
                Ok(Command::WindowStart) => {
                    self.window_started = true;
                    self.viewers.iter_mut().for_each(|v| v.snapshot_window_start());
                }
                Ok(Command::WindowEnd) => {
                    self.window_ended = true;
                    self.viewers.iter_mut().for_each(|v| v.snapshot_window_end());
                }
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => return true,
                Err(TryRecvError::Empty) => return false,
            }
        }
    }

    fn add(&mut self, mut v: Box<Viewer>, buf: &mut [u8]) {
        let token = Token(self.viewers.len());
        let ok = self.poll.registry().register(&mut v.socket, token, Interest::READABLE).is_ok();
        // Late joiners take part in the window from now on.
        if self.window_started {
            v.snapshot_window_start();
        }
        if self.window_ended {
            v.snapshot_window_end();
        }
        // Kick it: str0m starts ICE checks on its first poll; then take what the server already sent.
        v.drain();
        v.on_readable(buf);
        self.viewers.push(v);
        self.registered.push(ok);
    }

    fn deregister_dead(&mut self) {
        for (v, reg) in self.viewers.iter_mut().zip(self.registered.iter_mut()) {
            if *reg && !v.alive() {
                let _ = self.poll.registry().deregister(&mut v.socket);
                *reg = false;
            }
        }
    }

    fn stop(mut self) -> Vec<Report> {
        for v in self.viewers.iter_mut() {
            v.close();
        }
        self.viewers.iter().map(|v| v.report(self.window_started)).collect()
    }
}
