//! Sending on the media port in batches: UDP GSO within one viewer's packets, `sendmmsg` across viewers.
//!
//! A *run* is datagrams of equal size to one destination from one socket (a frame's RTP packets to one
//! viewer; the last may be shorter). With UDP GSO (`UDP_SEGMENT`, `webrtc.udp_gso`) a run leaves as one
//! message that the kernel cuts into the datagrams. With `sendmmsg` (`webrtc.udp_mmsg`) the runs of the
//! viewers driven one after another leave together, up to [`MMSG_MAX`] messages in one system call:
//!
//! ```text
//!   viewer A: [v v v v v'] [a]      viewer B: [v v v v v'] [a]      ...
//!        \_ GSO run _/      \_ single        \_ GSO run _/      \_ single
//!   one sendmmsg (UDP_SEGMENT = |v|): A's run, A's a, B's run, B's a, ...
//! ```
//!
//! nix's `sendmmsg` gives every message of one call the same control messages, so runs are grouped by
//! GSO segment size. A single datagram needs no segmenting and rides in any group whose size is not less
//! than its length (the kernel sends a message no longer than `UDP_SEGMENT` as it is), or else in a group
//! without GSO. A run joins the latest group it fits that is not before a group holding an earlier run to
//! the same destination, so each viewer's packets still leave in the order they were made. Runs wait at
//! most until [`MMSG_MAX`] of them are ready or the mux loop goes back to waiting ([`SendBatch::flush`]):
//! the first viewer's packets wait while ~`MMSG_MAX / 2` viewers are driven.
//! Without `sendmmsg` each run leaves on its own as soon as it is complete (one `sendmsg` through `quinn-udp`).

use std::collections::HashMap;
use std::io::{ErrorKind, IoSlice};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, sendmmsg};
use str0m::net::Transmit;

use super::udp::MediaSocket;

/// The most one GSO send carries (the kernel's limit for one UDP payload).
const MAX_GSO_BYTES: usize = 65_000;

/// Runs sent in one `sendmmsg` round (and messages per call at most; the kernel takes up to 1024).
const MMSG_MAX: usize = 32;

/// Datagrams and system calls made on the media port (for `glasscast_mux_udp_*_total`).
#[derive(Debug, Default)]
pub(crate) struct SendCounters {
    pub datagrams: AtomicU64,
    pub calls: AtomicU64,
}

/// One run: `buf[start..end]`, `count` datagrams of `segment` bytes (the last may be shorter).
#[derive(Clone, Copy)]
struct Run {
    socket: usize,
    destination: SocketAddr,
    segment: usize,
    count: usize,
    start: usize,
    end: usize,
}

impl Run {
    /// The GSO segment size its message carries (a single datagram needs none).
    fn gso(&self) -> Option<u16> {
        (self.count > 1).then(|| u16::try_from(self.segment).expect("a segment is under MAX_GSO_BYTES"))
    }
}

/// Datagrams waiting to leave the media port. Without GSO (`webrtc.udp_gso = false`, a kernel without it,
/// or a driver that refused it once) each run is one datagram. Whoever pushes seals the run when a peer
/// is done ([`SendBatch::seal`]) and flushes before waiting for anything ([`SendBatch::flush`]).
pub(super) struct SendBatch {
    gso: bool,
    mmsg: bool,
    /// The run being added to (`count` 0: none).
    open: Run,
    /// A shorter datagram ended the open run (GSO cuts every segment but the last at `segment`).
    closed: bool,
    /// Complete runs waiting for `sendmmsg`.
    runs: Vec<Run>,
    buf: Vec<u8>,
    counters: Arc<SendCounters>,
}

impl SendBatch {
    pub fn new(gso: bool, mmsg: bool, counters: Arc<SendCounters>) -> Self {
        let nowhere = SocketAddr::from(([0, 0, 0, 0], 0));
        let open = Run { socket: 0, destination: nowhere, segment: 0, count: 0, start: 0, end: 0 };
        let buf = Vec::with_capacity(MAX_GSO_BYTES);
        SendBatch { gso, mmsg, open, closed: false, runs: Vec::with_capacity(MMSG_MAX), buf, counters }
    }

    /// Adds `t` to the open run, or seals that and opens a new one with it.
    pub fn push(&mut self, sockets: &[MediaSocket], t: &Transmit) {
        let Some(i) = socket_for(sockets, t) else { return };
        let len = t.contents.len();
        let max = if self.gso { sockets[i].state.max_gso_segments() } else { 1 };
        let o = &self.open;
        let joins = o.count > 0
            && (o.socket, o.destination) == (i, t.destination)
            && !self.closed
            && len <= o.segment
            && o.count < max
            && self.buf.len() - o.start + len <= MAX_GSO_BYTES;
        if !joins {
            self.seal(sockets);
            let start = self.buf.len();
            self.open = Run { socket: i, destination: t.destination, segment: len, count: 0, start, end: start };
        }
        self.buf.extend_from_slice(&t.contents);
        self.open.count += 1;
        self.closed = len < self.open.segment;
    }

    /// Ends the open run: sent now without `sendmmsg`; with it, kept until [`MMSG_MAX`] runs are ready.
    pub fn seal(&mut self, sockets: &[MediaSocket]) {
        if self.open.count == 0 {
            return;
        }
        let run = Run { end: self.buf.len(), ..self.open };
        (self.open.count, self.closed) = (0, false);
        if !self.mmsg {
            self.send_run(sockets, &run);
            self.buf.clear();
            return;
        }
        self.runs.push(run);
        if self.runs.len() >= MMSG_MAX {
            self.flush(sockets);
        }
    }

    /// Sends everything waiting.
    pub fn flush(&mut self, sockets: &[MediaSocket]) {
        self.seal(sockets);
        if self.runs.is_empty() {
            return;
        }
        let mut runs = std::mem::take(&mut self.runs);
        for group in in_order_groups(&runs) {
            for chunk in group.chunks(MMSG_MAX) {
                self.send_many(sockets, chunk);
            }
        }
        runs.clear();
        self.runs = runs;
        self.buf.clear();
    }

    /// One run in one call (`sendto`, or `sendmsg` with GSO); datagram by datagram if the GSO send fails.
    fn send_run(&mut self, sockets: &[MediaSocket], run: &Run) {
        let s = &sockets[run.socket];
        let contents = &self.buf[run.start..run.end];
        let sent = if run.count == 1 {
            s.socket.send_to(contents, run.destination).map(drop)
        } else {
            let t = quinn_udp::Transmit {
                destination: run.destination,
                ecn: None,
                contents,
                segment_size: Some(run.segment),
                src_ip: None,
            };
            s.state.try_send((&s.socket).into(), &t)
        };
        self.count(run.count, 1);
        match sent {
            Ok(()) => {}
            Err(e) if run.count > 1 && e.kind() != ErrorKind::WouldBlock => {
                tracing::debug!(error = %e, to = %run.destination, "GSO send failed; datagram by datagram");
                self.send_each(s, run);
            }
            Err(e) => tracing::trace!(error = %e, to = %run.destination, "send failed"),
        }
    }

    /// Runs that share a socket and a GSO size in `sendmmsg` calls, resending what a call did not take.
    fn send_many(&mut self, sockets: &[MediaSocket], runs: &[Run]) {
        let s = &sockets[runs[0].socket];
        let gso = runs.iter().find_map(Run::gso);
        let iovs: Vec<[IoSlice<'_>; 1]> = runs.iter().map(|r| [IoSlice::new(&self.buf[r.start..r.end])]).collect();
        let addrs: Vec<Option<SockaddrStorage>> = runs.iter().map(|r| Some(r.destination.into())).collect();
        let mut done = 0;
        let (mut calls, mut gso_refused) = (0, false);
        while done < runs.len() {
            calls += 1;
            match mmsg(s, gso, &iovs[done..], &addrs[done..]) {
                Ok(n) if n > 0 => done += n,
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    tracing::trace!(dropped = runs.len() - done, "send buffer full; datagrams dropped");
                    break;
                }
                // The first message failed (a later one makes the call stop short, and comes first next time).
                failed => {
                    let run = &runs[done];
                    tracing::debug!(error = ?failed.err(), to = %run.destination, "sendmmsg refused a message; datagram by datagram");
                    gso_refused |= gso.is_some() && failed.err() == Some(Errno::EIO);
                    calls += self.send_each(s, run);
                    done += 1;
                }
            }
        }
        self.count(runs.iter().map(|r| r.count).sum(), calls);
        // EIO: a driver that cannot segment (`quinn-udp` reads it the same way); no more runs are made.
        if gso_refused && self.gso {
            tracing::warn!("the media port's UDP GSO sends fail (EIO); sending one datagram per message from now on");
            self.gso = false;
        }
    }

    /// Sends `run`'s datagrams one by one; the calls made.
    fn send_each(&self, s: &MediaSocket, run: &Run) -> u64 {
        for d in self.buf[run.start..run.end].chunks(run.segment) {
            let _ = s.socket.send_to(d, run.destination);
        }
        run.count as u64
    }

    fn count(&self, datagrams: usize, calls: u64) {
        self.counters.datagrams.fetch_add(datagrams as u64, Ordering::Relaxed);
        self.counters.calls.fetch_add(calls, Ordering::Relaxed);
    }
}

/// One `sendmmsg` call: the messages `iovs` to `addrs`, each with `gso` as its `UDP_SEGMENT`; how many left.
fn mmsg(
    s: &MediaSocket,
    gso: Option<u16>,
    iovs: &[[IoSlice<'_>; 1]],
    addrs: &[Option<SockaddrStorage>],
) -> nix::Result<usize> {
    let fd = s.socket.as_raw_fd();
    match gso {
        Some(size) => {
            let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(iovs.len(), Some(nix::cmsg_space!(u16)));
            let cmsg = [ControlMessage::UdpGsoSegments(&size)];
            sendmmsg(fd, &mut headers, iovs, addrs, cmsg, MsgFlags::empty()).map(Iterator::count)
        }
        None => {
            let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(iovs.len(), None);
            sendmmsg(fd, &mut headers, iovs, addrs, [], MsgFlags::empty()).map(Iterator::count)
        }
    }
}

/// One `sendmmsg` group: a socket, the GSO size every message carries (none while it holds only single
/// datagrams), the longest single datagram in it, and the runs.
struct Group {
    socket: usize,
    gso: Option<u16>,
    longest: usize,
    runs: Vec<Run>,
}

impl Group {
    /// A run needs its own GSO size (which a group of single datagrams no longer takes on); a single
    /// datagram fits any size not less than its length, or none.
    fn fits(&self, r: &Run) -> bool {
        self.socket == r.socket
            && match (self.gso, r.gso()) {
                (None, Some(size)) => self.longest <= usize::from(size),
                (g, Some(size)) => g == Some(size),
                (None, None) => true,
                (Some(size), None) => r.end - r.start <= usize::from(size),
            }
    }

    fn join(&mut self, r: Run) {
        self.gso = self.gso.or(r.gso());
        if r.count == 1 {
            self.longest = self.longest.max(r.end - r.start);
        }
        self.runs.push(r);
    }
}

/// `runs` split into groups one `sendmmsg` each, in an order that keeps every destination's runs in the
/// order they came: a run joins the latest group it fits unless an earlier run to its destination is in a
/// later group; then it starts a new one.
fn in_order_groups(runs: &[Run]) -> Vec<Vec<Run>> {
    let mut groups: Vec<Group> = Vec::new();
    let mut last: HashMap<SocketAddr, usize> = HashMap::new();
    for r in runs {
        let after = last.get(&r.destination).copied().unwrap_or(0);
        let g = match groups.iter().rposition(|g| g.fits(r)) {
            Some(g) if g >= after => g,
            _ => {
                groups.push(Group { socket: r.socket, gso: None, longest: 0, runs: Vec::new() });
                groups.len() - 1
            }
        };
        groups[g].join(*r);
        last.insert(r.destination, g);
    }
    groups.into_iter().map(|g| g.runs).collect()
}

/// The socket bound to `t`'s source address (or, failing that, one of its address family).
fn socket_for(sockets: &[MediaSocket], t: &Transmit) -> Option<usize> {
    sockets
        .iter()
        .position(|s| s.local == t.source)
        .or_else(|| sockets.iter().position(|s| s.local.is_ipv4() == t.destination.is_ipv4()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dest: u16, segment: usize, count: usize) -> Run {
        let destination = SocketAddr::from(([198, 18, 0, 1], dest));
        Run { socket: 0, destination, segment, count, start: 0, end: segment * count }
    }

    fn shape(groups: &[Vec<Run>]) -> Vec<Vec<(u16, usize)>> {
        groups.iter().map(|g| g.iter().map(|r| (r.destination.port(), r.count)).collect()).collect()
    }

    #[test]
    fn viewers_runs_share_a_call_and_keep_each_viewers_order() {
        // A: video run, audio; B: the same; C: audio first, then a video run.
        let runs = [run(1, 1200, 5), run(1, 100, 1), run(2, 1200, 5), run(2, 100, 1), run(3, 100, 1), run(3, 1200, 4)];
        assert_eq!(shape(&in_order_groups(&runs[4..])), vec![vec![(3, 1), (3, 4)]]);
        let groups = in_order_groups(&runs);
        // The audio rides along (no longer than the segment size): one call, in the order made.
        assert_eq!(shape(&groups), vec![vec![(1, 5), (1, 1), (2, 5), (2, 1), (3, 1), (3, 4)]]);
    }

    #[test]
    fn different_segment_sizes_never_share_a_call_nor_pass_each_other() {
        // A's 1100-byte run cannot join the 1200 group; A's next 1200 run may not go back before it.
        let runs = [run(1, 1200, 3), run(2, 1100, 3), run(3, 1200, 2), run(2, 1200, 2), run(4, 1300, 1)];
        let groups = in_order_groups(&runs);
        assert_eq!(shape(&groups), vec![vec![(1, 3), (3, 2)], vec![(2, 3)], vec![(2, 2)], vec![(4, 1)]]);
        // A group of single datagrams takes on the size of the first run that is not shorter than they are.
        let runs = [run(1, 200, 1), run(1, 1200, 3), run(2, 1300, 1), run(2, 1200, 3)];
        let groups = in_order_groups(&runs);
        assert_eq!(shape(&groups), vec![vec![(1, 1), (1, 3)], vec![(2, 1)], vec![(2, 3)]]);
        for g in &groups {
            let size = g.iter().find_map(Run::gso);
            assert!(g.iter().all(|r| r.gso().is_none_or(|s| Some(s) == size)), "one GSO size per call");
            assert!(g.iter().all(|r| size.is_none_or(|s| r.count > 1 || r.end - r.start <= usize::from(s))));
        }
    }
}
