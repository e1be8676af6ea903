//! Connection limits, below HTTP: how many connections the listener holds in total and per client address,
//! and how long one may sit without a byte moving. Hyper's own limits (header-read timeout, HTTP/2 streams)
//! are set on its builder in [`configure`]. Together they keep half-open and slow connections (slowloris)
//! from locking out viewers and the admin CLI.
//!
//! An over-limit connection is closed as soon as it is accepted, before TLS: there is no HTTP yet to answer
//! with, and answering would cost what the limit saves.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::config::ConnLimits;

/// Counts open connections, in total and per client address (an IPv6 client by its /64, as the
/// failed-token limit does).
#[derive(Debug)]
struct Counts {
    max_total: usize,
    max_per_client: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Permit {
    counts: Arc<Counts>,
    client: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().expect("connection count lock");
        open.0 -= 1;
        crate::telemetry::connections_open(open.0);
        if let Some(n) = open.1.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.1.remove(&self.client);
            }
        }
    }
}

impl Counts {
    /// A place for a connection from `ip`, or why not.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, &'static str> {
        let client = super::limit::client_key(ip);
        let mut open = self.open.lock().expect("connection count lock");
        if open.0 >= self.max_total {
            return Err("total");
        }
        let n = open.1.entry(client).or_insert(0);
        if *n >= self.max_per_client {
            return Err("per-client");
        }
        *n += 1;
        open.0 += 1;
        crate::telemetry::connections_open(open.0);
        Ok(Permit { counts: self.clone(), client })
    }
}

/// An acceptor that admits each TCP connection against the limits and wraps it in [`Guarded`] (idle
/// timeout, its [`Permit`]) before handing it to `inner` (TLS, or nothing for plain HTTP).
#[derive(Debug, Clone)]
pub struct LimitAcceptor<A> {
    inner: A,
    counts: Arc<Counts>,
    idle: Duration,
}

impl<A> LimitAcceptor<A> {
    pub fn new(inner: A, limits: &ConnLimits) -> Self {
        let counts = Counts {
            max_total: limits.max_connections as usize,
            max_per_client: limits.max_connections_per_client as usize,
            open: Mutex::new((0, HashMap::new())),
        };
        Self { inner, counts: Arc::new(counts), idle: Duration::from_secs(limits.idle_timeout_s.into()) }
    }
}

impl<A, S> Accept<TcpStream, S> for LimitAcceptor<A>
where
    A: Accept<Guarded<TcpStream>, S> + Clone + Send + 'static,
    A::Future: Send,
    S: Send + 'static,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(A::Stream, A::Service)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        // Signalling is small requests and answers: Nagle would hold an answer's last TLS record until
        // the client acknowledges the first, and a client delays that ACK by up to 40 ms
        // (bench/coldjoin.mjs saw a third of the answers take ~40 ms longer).
        let _ = stream.set_nodelay(true);
        let admitted = match stream.peer_addr() {
            Ok(peer) => self.counts.admit(peer.ip().to_canonical()).map_err(|limit| (limit, Some(peer.ip()))),
            Err(_) => Err(("no peer address", None)),
        };
        let (inner, idle) = (self.inner.clone(), self.idle);
        Box::pin(async move {
            let permit = admitted.map_err(|(limit, client)| {
                crate::telemetry::connection_refused(limit);
                tracing::debug!(?client, limit, "connection refused: over the connection limit");
                io::Error::other(format!("over the {limit} connection limit"))
            })?;
            inner.accept(Guarded::new(stream, idle, permit), service).await
        })
    }
}

/// A connection with an idle timeout (no byte read or written for `idle`: reads and writes fail with
/// `TimedOut`, and hyper closes it) that holds its [`Permit`] while open.
#[derive(Debug)]
pub struct Guarded<S> {
    inner: S,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    _permit: Permit,
}

impl<S> Guarded<S> {
    fn new(inner: S, idle: Duration, permit: Permit) -> Self {
        Self { inner, idle, deadline: Box::pin(tokio::time::sleep(idle)), _permit: permit }
    }

    /// Progress was made: the idle clock starts again.
    fn moved(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.idle);
    }

    /// Nothing moved: `Pending`, or the idle timeout's error once it has passed.
    fn waiting<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "connection idle"))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.moved();
                Poll::Ready(r)
            }
            Poll::Pending => this.waiting(cx),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.moved();
                Poll::Ready(r)
            }
            Poll::Pending => this.waiting(cx),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Hyper's limits: the time a client has to send a request's header (HTTP/1; slowloris sends it a byte at a
/// time), and concurrent streams per HTTP/2 connection.
pub fn configure(builder: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>, l: &ConnLimits) {
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(l.header_timeout_s.into()));
    builder
        .http2()
        .timer(hyper_util::rt::TokioTimer::new())
        .max_concurrent_streams(l.http2_max_streams)
        .max_pending_accept_reset_streams(Some(20));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(total: usize, per_client: usize) -> Arc<Counts> {
        Arc::new(Counts { max_total: total, max_per_client: per_client, open: Mutex::new((0, HashMap::new())) })
    }

    #[test]
    fn a_client_over_its_share_is_refused_and_a_closed_connection_frees_its_place() {
        let c = counts(3, 2);
        let (a, b) = ("192.0.2.1".parse().expect("ip"), "192.0.2.2".parse().expect("ip"));
        let a1 = c.admit(a).expect("first");
        let _a2 = c.admit(a).expect("second");
        assert_eq!(c.admit(a).err(), Some("per-client"));
        let _b1 = c.admit(b).expect("another client");
        assert_eq!(c.admit(b).err(), Some("total"));
        drop(a1);
        assert!(c.admit(b).is_ok(), "a closed connection frees its place");
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64() {
        let c = counts(10, 1);
        let _one = c.admit("2001:db8::1".parse().expect("ip")).expect("first");
        assert_eq!(c.admit("2001:db8::2".parse().expect("ip")).err(), Some("per-client"));
        assert!(c.admit("2001:db8:0:1::1".parse().expect("ip")).is_ok());
    }
}
