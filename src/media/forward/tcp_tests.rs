//! `TcpMux` against real loopback connections and a real `mio::Poll`, on a made-up clock: frames read as
//! they arrive and lent in place, a visit's budget, the per-address cap, the check deadline and idleness
//! counted from the last frame that reached a viewer.

use super::*;
use std::io::Write;
use std::net::TcpStream as StdStream;

use mio::{Events, Poll};

struct Bed {
    poll: Poll,
    mux: TcpMux,
    addr: SocketAddr,
}

impl Bed {
    fn new(per_address: usize) -> Self {
        let poll = Poll::new().expect("poll");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let addr = listener.local_addr().expect("addr");
        let mux = TcpMux::new(Some(listener), poll.registry(), per_address, Arc::default()).expect("tcp mux");
        Self { poll, mux, addr }
    }

    /// A client connection from `from` (any port), accepted by the mux at `now`.
    fn connect(&mut self, from: &str, now: Instant) -> StdStream {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        s.bind(&format!("{from}:0").parse::<SocketAddr>().expect("addr").into()).expect("bind");
        s.connect(&self.addr.into()).expect("connect");
        let before = self.open();
        for _ in 0..50 {
            self.mux.accept(self.poll.registry(), now);
            if self.open() != before {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        s.into()
    }

    fn open(&self) -> usize {
        self.mux.counters.open() as usize
    }

    /// The only connection's token.
    fn token(&self) -> Token {
        *self.mux.conns.keys().next().expect("a connection")
    }

    /// Every frame connection `token` has within one visit (each counted as reaching a viewer when
    /// `reach`), after waiting for the poll to report it.
    fn frames(&mut self, token: Token, reach: bool, now: Instant) -> (Vec<Vec<u8>>, bool) {
        let mut events = Events::with_capacity(16);
        let _ = self.poll.poll(&mut events, Some(Duration::from_millis(200)));
        let (mut got, mut visit) = (Vec::new(), Visit::default());
        loop {
            match self.mux.next_frame(token, &mut visit) {
                Next::Frame(lent) => {
                    got.push(lent.packet().to_vec());
                    self.mux.done(lent, reach, now);
                }
                Next::Idle => return (got, false),
                Next::Later => return (got, true),
            }
        }
    }
}

fn framed(packet: &[u8]) -> Vec<u8> {
    let mut f = (packet.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(packet);
    f
}

#[test]
fn frames_split_anywhere_arrive_whole_and_the_buffer_holds_one_frame_at_most() {
    let now = Instant::now();
    let mut bed = Bed::new(8);
    let mut c = bed.connect("127.0.0.1", now);
    let token = bed.token();
    let (a, b) = (vec![7u8; 300], vec![9u8; 40]);
    let bytes = [framed(&a), framed(&b)].concat();
    // Byte by byte: each read takes what has come, nothing is delivered early.
    let mut got = Vec::new();
    for byte in &bytes {
        c.write_all(&[*byte]).expect("write");
        std::thread::sleep(Duration::from_millis(2));
        got.extend(bed.frames(token, true, now).0);
    }
    assert_eq!(got, vec![a, b]);
    // Checked now (a frame reached a viewer): a frame of the largest size is read whole.
    let big = vec![3u8; 65_535];
    c.write_all(&framed(&big)).expect("write");
    let mut got = Vec::new();
    for _ in 0..20 {
        got.extend(bed.frames(token, true, now).0);
        if !got.is_empty() {
            break;
        }
    }
    assert_eq!(got, vec![big]);
    let conn = &bed.mux.conns[&token];
    assert!(conn.frame.capacity() <= KEEP_BUFFER, "a large frame's buffer is let go of after it");
}

#[test]
fn a_visit_reads_a_bounded_amount_and_the_rest_is_read_later() {
    let now = Instant::now();
    let mut bed = Bed::new(8);
    let mut c = bed.connect("127.0.0.1", now);
    let token = bed.token();
    c.write_all(&framed(b"hello")).expect("write");
    bed.frames(token, true, now);
    let frames: Vec<u8> = (0..200).flat_map(|i| framed(&[i as u8; 100])).collect();
    c.write_all(&frames).expect("write");
    std::thread::sleep(Duration::from_millis(50));
    let (first, later) = bed.frames(token, true, now);
    assert_eq!(first.len(), VISIT_FRAMES as usize, "one visit takes at most its frames");
    assert!(later && bed.mux.has_later(), "and the connection is visited again");
    assert_eq!(bed.mux.take_later(), vec![token]);
    assert!(!bed.mux.has_later());
    let mut all = first;
    while all.len() < 200 {
        let (more, _) = bed.frames(token, true, now);
        assert!(!more.is_empty(), "the rest comes on later visits ({} so far)", all.len());
        all.extend(more);
        bed.mux.take_later();
    }
    assert!(all.iter().enumerate().all(|(i, f)| f == &vec![i as u8; 100]), "in order, whole");
}

#[test]
fn an_unchecked_connection_may_not_send_a_large_frame_or_a_zero_length() {
    let now = Instant::now();
    let mut bed = Bed::new(8);
    let mut c = bed.connect("127.0.0.1", now);
    let token = bed.token();
    c.write_all(&framed(&[1u8; UNCHECKED_FRAME + 1])).expect("write");
    bed.frames(token, false, now);
    assert_eq!(bed.open(), 0, "a large frame before any reached a viewer closes the connection");
    let mut c = bed.connect("127.0.0.1", now);
    let token = bed.token();
    c.write_all(&[0, 0]).expect("write");
    bed.frames(token, false, now);
    assert_eq!(bed.open(), 0, "a zero length is unframeable");
    assert_eq!(bed.mux.counters.closed(Closed::BadFrame), 2);
}

#[test]
fn one_address_holds_its_share_and_another_still_gets_in() {
    let now = Instant::now();
    let mut bed = Bed::new(8);
    let mut held = Vec::new();
    for _ in 0..12 {
        held.push(bed.connect("127.0.0.2", now));
    }
    assert_eq!(bed.open(), 8, "at most webrtc.ice_tcp_per_address from one address");
    assert_eq!(bed.mux.counters.closed(Closed::PerAddress), 4, "the others refused, and counted");
    held.push(bed.connect("127.0.0.1", now));
    assert_eq!(bed.open(), 9, "another address is admitted");
}

#[test]
fn when_every_slot_is_taken_the_oldest_unchecked_connection_makes_room() {
    let t0 = Instant::now();
    let mut bed = Bed::new(2 * MAX_CONNECTIONS);
    let mut held = vec![bed.connect("127.0.0.1", t0)];
    let first = bed.token();
    held[0].write_all(&framed(b"check")).expect("write");
    bed.frames(first, true, t0);
    for i in 1..MAX_CONNECTIONS {
        held.push(bed.connect("127.0.0.1", t0 + Duration::from_millis(i as u64)));
    }
    assert_eq!(bed.open(), MAX_CONNECTIONS);
    let oldest_unchecked =
        *bed.mux.conns.iter().filter(|(t, _)| **t != first).min_by_key(|(_, c)| c.opened).expect("one").0;
    held.push(bed.connect("127.0.0.1", t0 + Duration::from_secs(10)));
    assert_eq!(bed.open(), MAX_CONNECTIONS, "a new connection took a slot");
    assert!(bed.mux.conns.contains_key(&first), "the checked connection stays");
    let newest = bed.mux.conns.values().map(|c| c.opened).max();
    assert_eq!(newest, Some(t0 + Duration::from_secs(10)), "the new connection is in");
    assert!(!bed.mux.conns.contains_key(&oldest_unchecked), "the oldest unchecked one made room");
    assert_eq!(bed.mux.counters.closed(Closed::Evicted), 1);
}

#[test]
fn no_check_within_the_deadline_closes_and_idleness_counts_from_the_last_frame_a_viewer_took() {
    let t0 = Instant::now();
    let mut bed = Bed::new(8);
    let _silent = bed.connect("127.0.0.1", t0);
    let mut chatty = bed.connect("127.0.0.1", t0);
    let tokens: Vec<Token> = bed.mux.conns.keys().copied().collect();
    // One keeps sending frames that reach no viewer: bytes do not keep it open.
    for s in 1..=5 {
        chatty.write_all(&framed(b"junk")).expect("write");
        for t in &tokens {
            bed.frames(*t, false, t0 + Duration::from_secs(s));
        }
    }
    bed.mux.sweep(t0 + CHECK_DEADLINE);
    assert_eq!(bed.open(), 2, "not before the deadline");
    bed.mux.sweep(t0 + CHECK_DEADLINE + Duration::from_millis(1));
    assert_eq!(bed.open(), 0, "neither had a frame reach a viewer by the deadline");
    assert_eq!(bed.mux.counters.closed(Closed::NoCheck), 2);

    let mut viewer = bed.connect("127.0.0.1", t0);
    let token = bed.token();
    viewer.write_all(&framed(b"check")).expect("write");
    bed.frames(token, true, t0 + Duration::from_secs(1));
    viewer.write_all(&framed(b"junk")).expect("write");
    bed.frames(token, false, t0 + Duration::from_secs(20));
    bed.mux.sweep(t0 + Duration::from_secs(1) + IDLE);
    assert_eq!(bed.open(), 1, "a checked connection lives IDLE from its last frame a viewer took");
    bed.mux.sweep(t0 + Duration::from_secs(2) + IDLE);
    assert_eq!(bed.open(), 0, "frames no viewer took do not keep it open");
    assert_eq!(bed.mux.counters.closed(Closed::Idle), 1);
}
