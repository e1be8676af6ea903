//! Junk for the shared media port (issue 17), shared by tests/load/junk_flood.rs and the `junk` bench
//! (bench/junk.rs includes this file): what each datagram is, and a sender fast enough to reach 100k
//! datagrams/s on one core (`sendmmsg`, 64 datagrams per call, from a pool made once).

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// HMAC-SHA1 of `data` under `key`, as STUN's MESSAGE-INTEGRITY wants.
fn sha1_hmac(key: &[u8], data: &[&[u8]]) -> [u8; 20] {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let mut ctx = hmac::Context::with_key(&key);
    for d in data {
        ctx.update(d);
    }
    ctx.sign().as_ref().try_into().expect("SHA-1 is 20 bytes")
}

/// A real ICE check (a STUN Binding request made by str0m's encoder) with USERNAME `username`
/// (`<server ufrag>:<client ufrag>`) and the right MESSAGE-INTEGRITY for `password` (the server's ice-pwd).
/// Without USE-CANDIDATE: it moves no viewer's path.
#[allow(dead_code)]
pub fn valid_check(username: &str, password: &str) -> Vec<u8> {
    use str0m::ice::{StunMessage, TransId};
    let mut stun = vec![0u8; 1200];
    let check = StunMessage::binding_request(username, TransId::new(), true, 0x1234_5678, 2_130_706_431, false);
    let n = check.to_bytes(Some(password.as_bytes()), &mut stun, sha1_hmac).expect("a STUN check encodes");
    stun.truncate(n);
    stun
}

/// A STUN Binding request with USERNAME `user` and a MESSAGE-INTEGRITY that is not right.
pub fn bad_check(user: &str, n: u64) -> Vec<u8> {
    let mut attrs = vec![0x00, 0x06];
    attrs.extend_from_slice(&(user.len() as u16).to_be_bytes());
    attrs.extend_from_slice(user.as_bytes());
    attrs.resize(attrs.len().next_multiple_of(4), 0);
    attrs.extend_from_slice(&[0x00, 0x08, 0x00, 0x14]);
    attrs.extend_from_slice(&[0xab; 20]);
    let mut m = vec![0x00, 0x01];
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
    m.extend_from_slice(&n.to_be_bytes());
    m.extend_from_slice(&[0; 4]);
    m.extend(attrs);
    m
}

/// Datagrams that look right at first and lie further in, for the parsers behind the classifier: STUN
/// with an attribute longer than the message, a DTLS handshake record whose lengths overrun, RTP with CSRCs
/// and a header extension cut short, an RTCP compound whose second packet claims more than is there.
pub fn malformed(i: u64) -> Vec<u8> {
    let n = (i / 8) as u8;
    match (i / 8) % 4 {
        0 => {
            let mut m = vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42];
            m.extend_from_slice(&i.to_be_bytes());
            m.extend_from_slice(&[0; 4]);
            m.extend_from_slice(&[0x00, 0x06, 0xff, n, b'x', b'y', b'z', b'w']);
            m
        }
        1 => vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, n, 0xff, 0xff, 1, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0x0f],
        2 => {
            let mut rtp = vec![0x9f, 96 + (n & 1), 0, n, 0, 0, 0, n, 0xde, 0xad, 0xbe, 0xef];
            rtp.extend_from_slice(&[0xbe, 0xde, 0xff, 0xff, 0x10, n]);
            rtp
        }
        _ => vec![0x80, 200, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0, 0x81, 201, 0xff, 0xff, 0, 0, 0, n],
    }
}

/// The `i`th junk datagram: a mix of every kind the mux classifies, malformed ones, and plain garbage.
pub fn junk(i: u64, known_ufrag: &str) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut bytes = |n: usize, first: u8| {
        let mut v = vec![first];
        v.extend((1..n).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        }));
        v
    };
    match i % 8 {
        6 | 7 => malformed(i),
        0 => bytes(200, 0x80),                                 // RTP-looking
        1 => bytes(100, 0x81),                                 // RTCP-looking (second byte varies)
        2 => bytes(120, 22),                                   // a DTLS record's first byte
        3 => bad_check(&format!("{:08x}:x", i), i),            // a check for nobody
        4 => bad_check(&format!("{known_ufrag}:attacker"), i), // a forged check for a real viewer
        _ => bytes(64, (i % 256) as u8),
    }
}

/// Distinct datagrams in the pool the sender cycles through.
const POOL: u64 = 4096;
/// Datagrams per `sendmmsg`.
const BATCH: usize = 64;

/// Floods `to` from 8 sockets of their own (sources no viewer uses) at about `per_second` until `stop`,
/// counting what it sent. `known_ufrag` (a real viewer's) makes one datagram in eight a forged check for it.
pub fn flood(to: SocketAddr, per_second: u64, known_ufrag: String, stop: Arc<AtomicBool>) -> Arc<AtomicU64> {
    let sent = Arc::new(AtomicU64::new(0));
    let count = sent.clone();
    std::thread::spawn(move || {
        let pool: Vec<Vec<u8>> = (0..POOL).map(|i| junk(i, &known_ufrag)).collect();
        let any: SocketAddr = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("a literal address");
        let sockets: Vec<UdpSocket> = (0..8)
            .map(|_| {
                let s = UdpSocket::bind(any).expect("bind a junk socket");
                s.connect(to).expect("connect a junk socket");
                s
            })
            .collect();
        let start = Instant::now();
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let due = (start.elapsed().as_secs_f64() * per_second as f64) as u64;
            if i >= due {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            let n = (due - i).min(BATCH as u64) as usize;
            let batch: Vec<&[u8]> = (0..n as u64).map(|k| pool[((i + k) % POOL) as usize].as_slice()).collect();
            // Refused sends (ICMP port unreachable coming back) count as sent: the datagrams left.
            let _ = send_batch(&sockets[((i / BATCH as u64) % 8) as usize], &batch);
            i += n as u64;
            count.store(i, Ordering::Relaxed);
        }
    });
    sent
}

/// Sends `batch` on the connected `socket` in one `sendmmsg`; how many the kernel took.
fn send_batch(socket: &UdpSocket, batch: &[&[u8]]) -> usize {
    let mut iovs: Vec<libc::iovec> =
        batch.iter().map(|b| libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() }).collect();
    let mut hdrs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: an all-zero mmsghdr is a valid empty header (no name, no control data).
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = iov;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    // SAFETY: every header points at one iovec in `iovs`, each of which points into a slice of `batch`;
    // all of them outlive the call, and the kernel only reads them.
    let n = unsafe { libc::sendmmsg(socket.as_raw_fd(), hdrs.as_mut_ptr(), hdrs.len() as libc::c_uint, 0) };
    usize::try_from(n).unwrap_or(0)
}

/// The kernel's count of UDP datagrams dropped because a socket's receive buffer was full (all sockets).
pub fn rcvbuf_drops() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").expect("read /proc/net/snmp");
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:")).map(|l| l.split_whitespace().collect::<Vec<_>>());
    let (names, values) = (udp.next().expect("Udp: names"), udp.next().expect("Udp: values"));
    let at = names.iter().position(|n| *n == "RcvbufErrors").expect("RcvbufErrors");
    values[at].parse().expect("a count")
}
