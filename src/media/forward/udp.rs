//! The shared media port's UDP sockets: binding them, reading them in batches, and sending in batches.
//!
//! Reads go through `quinn-udp`: one `recvmmsg` takes up to [`quinn_udp::BATCH_SIZE`] datagrams, and with
//! UDP GRO one buffer may hold several datagrams from one source, `stride` bytes apart. Under a flood this
//! is what keeps the kernel crossing per datagram off the mux thread (docs/performance.md, junk flood).

use std::io::{ErrorKind, IoSliceMut};
use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use mio::net::UdpSocket;
use quinn_udp::{BATCH_SIZE, RecvMeta, UdpSocketState};

/// The largest datagram read whole; anything longer is junk and arrives cut short.
const MAX_DATAGRAM: usize = 65_536;

/// The receive buffer asked for each socket. While the mux thread sends a frame to every viewer (a few
/// milliseconds with hundreds of them), arriving datagrams wait here; with the kernel's usual 208 KiB a flood
/// of junk fills it in that time and viewers' own packets (ICE checks, DTLS, RTCP) are dropped with it.
/// 4 MiB holds ~50 ms of a 100k datagrams/s flood. Linux caps it at `net.core.rmem_max`.
pub(crate) const RECV_BUFFER: usize = 4 << 20;

/// One bound socket of the media port, with its `quinn-udp` state.
pub(super) struct MediaSocket {
    pub local: SocketAddr,
    pub socket: UdpSocket,
    pub(super) state: UdpSocketState,
}

/// A non-blocking UDP socket on `ip`:`port` with its receive buffer asked for, and the address it got.
pub(crate) fn bind(ip: IpAddr, port: u16) -> anyhow::Result<MediaSocket> {
    let s = std::net::UdpSocket::bind(SocketAddr::new(ip, port)).with_context(|| format!("binding UDP {ip}:{port}"))?;
    s.set_nonblocking(true)?;
    let sock = socket2::SockRef::from(&s);
    if let Err(e) = sock.set_recv_buffer_size(RECV_BUFFER) {
        tracing::debug!(error = %e, "cannot set the media port's receive buffer");
    }
    let state = UdpSocketState::new((&s).into()).with_context(|| format!("setting up UDP {ip}:{port}"))?;
    // Linux reports twice what it grants (the other half is its bookkeeping).
    let granted = sock.recv_buffer_size().map_or(0, |n| n / 2);
    if granted < RECV_BUFFER {
        tracing::warn!(
            granted_kib = granted / 1024,
            wanted_kib = RECV_BUFFER / 1024,
            "the media port's UDP receive buffer is capped by net.core.rmem_max: under a flood, viewers' packets \
             may be dropped with the junk; raise it (sysctl -w net.core.rmem_max={RECV_BUFFER}, docs/operations.md)"
        );
    }
    Ok(MediaSocket { local: s.local_addr()?, socket: UdpSocket::from_std(s), state })
}

impl MediaSocket {
    /// Another handle on the same socket (another mux thread sends on it; only the first reads it).
    pub fn try_clone(&self) -> anyhow::Result<MediaSocket> {
        let dup: std::net::UdpSocket = socket2::SockRef::from(&self.socket).try_clone()?.into();
        let state = UdpSocketState::new((&dup).into()).context("setting up a UDP socket handle")?;
        Ok(MediaSocket { local: self.local, socket: UdpSocket::from_std(dup), state })
    }
}

/// Binds `port` on each of `ips`. With port 0 the first address gets one from the OS and the others the
/// same; if another address has that one taken, it tries again with a new one.
pub(crate) fn bind_all(ips: &[IpAddr], port: u16) -> anyhow::Result<Vec<MediaSocket>> {
    let mut last_err = None;
    for _ in 0..8 {
        let mut out: Vec<MediaSocket> = Vec::new();
        let attempt = ips.iter().try_for_each(|ip| {
            let p = out.first().map_or(port, |s| s.local.port());
            out.push(bind(*ip, p)?);
            Ok::<_, anyhow::Error>(())
        });
        match attempt {
            Ok(()) => return Ok(out),
            Err(e) if port == 0 => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| anyhow::anyhow!("no local address to bind")))
}

/// The receive buffers, sized for a full batch of GRO lists; allocated once per mux.
pub(super) struct RecvBufs {
    bufs: Vec<Vec<u8>>,
    meta: Vec<RecvMeta>,
}

impl RecvBufs {
    pub fn new(sockets: &[MediaSocket]) -> Self {
        let gro = sockets.iter().map(|s| s.state.gro_segments()).max().unwrap_or(1);
        let size = MAX_DATAGRAM.max(gro * 1500);
        RecvBufs { bufs: vec![vec![0; size]; BATCH_SIZE], meta: vec![RecvMeta::default(); BATCH_SIZE] }
    }
}

impl MediaSocket {
    /// Reads until the socket is drained, giving `f` each datagram and its source.
    pub fn drain(&self, rb: &mut RecvBufs, mut f: impl FnMut(SocketAddr, &[u8])) {
        loop {
            let mut slices: Vec<IoSliceMut<'_>> = rb.bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
            let n = match self.state.recv((&self.socket).into(), &mut slices, &mut rb.meta) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // e.g. an ICMP error queued on the socket: nothing more to read now.
                Err(_) => return,
            };
            for (meta, buf) in rb.meta.iter().zip(&rb.bufs).take(n) {
                let data = &buf[..meta.len.min(buf.len())];
                for datagram in data.chunks(meta.stride.max(1)) {
                    f(meta.addr, datagram);
                }
            }
        }
    }
}
