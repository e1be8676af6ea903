//! Which peers need their timer work now, without looking at every peer each time round the mux loop.
//!
//! The loop goes round for every readable socket and every command, so a scan of all peers per round would
//! make each datagram (a junk flood's included) cost one check per viewer. Instead each peer's next wake
//! time sits in a min-heap, and peers with packets queued by [`Timers::mark`] are listed: a round that
//! finds nothing due costs one peek.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Instant;

use crate::ids::SessionId;

#[derive(Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, SessionId)>>,
    /// Each peer's earliest entry in `heap`; later entries of the same peer are stale.
    scheduled: HashMap<SessionId, Instant>,
    /// Peers with packets queued since the last pass.
    marked: Vec<SessionId>,
}

impl Timers {
    /// `id` wants its timer work at `at` (said after every time it is driven: its new wake time).
    pub fn schedule(&mut self, id: SessionId, at: Instant) {
        if self.scheduled.get(&id).is_none_or(|s| at < *s) {
            self.scheduled.insert(id, at);
            self.heap.push(Reverse((at, id)));
        }
    }

    /// `id` has packets queued: the next pass sends them.
    pub fn mark(&mut self, id: SessionId) {
        self.marked.push(id);
    }

    /// When the next pass may be due: `now` while packets are queued, else the earliest wake time (perhaps
    /// of a peer since gone or woken later: then the pass finds nothing, once).
    pub fn next(&self, now: Instant) -> Option<Instant> {
        if self.marked.is_empty() { self.heap.peek().map(|Reverse((at, _))| *at) } else { Some(now) }
    }

    /// The peers due at `now`, each once: those marked, and those whose wake time passed. `wake_at` gives a
    /// peer's wake time as it is now (`None`: the peer is gone); a peer woken later than its entry said is
    /// scheduled again at its new time.
    pub fn due(&mut self, now: Instant, wake_at: impl Fn(&SessionId) -> Option<Instant>) -> Vec<SessionId> {
        let mut due = std::mem::take(&mut self.marked);
        while let Some(&Reverse((at, id))) = self.heap.peek() {
            if at > now {
                break;
            }
            self.heap.pop();
            if self.scheduled.get(&id) != Some(&at) {
                continue;
            }
            self.scheduled.remove(&id);
            match wake_at(&id) {
                Some(w) if w <= now => due.push(id),
                Some(w) => self.schedule(id, w),
                None => {}
            }
        }
        due.sort_unstable();
        due.dedup();
        due
    }

    /// Entries held (heap entries, stale ones included), for the tests.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn peers_come_due_at_their_latest_wake_time_once_and_gone_peers_never() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let (a, b, c) = (SessionId::random(), SessionId::random(), SessionId::random());
        let mut wake: HashMap<SessionId, Instant> = HashMap::from([(a, ms(10)), (b, ms(20)), (c, ms(5))]);
        let mut t = Timers::default();
        for (id, at) in &wake {
            t.schedule(*id, *at);
        }
        assert_eq!(t.next(t0), Some(ms(5)));
        assert!(t.due(ms(1), |id| wake.get(id).copied()).is_empty(), "nothing due yet");
        // c is driven and now wakes later; b is gone.
        wake.insert(c, ms(30));
        t.schedule(c, ms(30));
        wake.remove(&b);
        assert_eq!(t.due(ms(10), |id| wake.get(id).copied()), vec![a], "c's old entry is not a wake");
        // a is driven again: it schedules its next wake.
        wake.insert(a, ms(40));
        t.schedule(a, ms(40));
        assert!(t.due(ms(25), |id| wake.get(id).copied()).is_empty(), "b's entry is dropped");
        t.mark(a);
        t.mark(a);
        assert_eq!(t.next(ms(26)), Some(ms(26)), "packets queued: due now");
        let mut want = vec![a, c];
        want.sort_unstable();
        assert_eq!(t.due(ms(31), |id| wake.get(id).copied()), want, "c's wake at 30 and a's marks: each once");
    }

    #[test]
    fn a_peer_driven_many_times_holds_few_entries() {
        let t0 = Instant::now();
        let id = SessionId::random();
        let mut t = Timers::default();
        // Driven 1000 times, each time waking 50 ms later than now (as media keeps a peer busy).
        for i in 0..1000u64 {
            t.schedule(id, t0 + Duration::from_millis(50 + i));
        }
        assert_eq!(t.len(), 1, "a later wake than the one held adds nothing");
        let wake = t0 + Duration::from_millis(1049);
        assert!(t.due(t0 + Duration::from_millis(60), |_| Some(wake)).is_empty());
        assert_eq!(t.next(t0), Some(wake), "rescheduled at its real wake time");
        assert_eq!(t.due(wake, |_| Some(wake)), vec![id]);
    }
}
