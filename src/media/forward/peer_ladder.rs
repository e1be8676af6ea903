//! A viewer's place on its stream's ladder: which rung's packets it gets, the switch in progress, and the
//! estimate and loss that move it ([`super::super::switch`]).

use std::time::Instant;

use str0m::bwe::{Bitrate, BweKind};

use super::{Peer, PeerEvent};
use crate::media::forward::packet::MediaPacket;
use crate::media::forward::switch::Chooser;

/// The most packets of the target rung held while the current rung's frame ends (a keyframe is some
/// dozens); past it the switch happens anyway.
const MAX_HELD: usize = 512;

/// What the chooser hears of a viewer's link.
pub(super) enum Link<'a> {
    Estimate(&'a BweKind),
    /// A receiver report's or transport-wide feedback's fraction lost.
    Loss(f32),
    /// What the viewer's video took over the last report period (kbit/s).
    Sent(u32),
    KeyframeRequest,
}

pub(in crate::media::forward) struct PeerLadder {
    chooser: Chooser,
    /// The rung whose packets the viewer gets.
    on: usize,
    /// The rung it is switching to (joined, its keyframe asked for).
    to: Option<usize>,
    /// Packets of `to`'s keyframe, held until `on`'s frame ends.
    held: Vec<(MediaPacket, u64)>,
    /// The last packet written of `on` ended its frame.
    at_boundary: bool,
}

impl PeerLadder {
    /// A viewer of a ladder with these bitrates (top first), on the top rung.
    pub fn new(kbps: Vec<u32>, now: Instant) -> Self {
        Self { chooser: Chooser::new(kbps, now), on: 0, to: None, held: Vec::new(), at_boundary: true }
    }

    pub fn initial_kbps(&self) -> u32 {
        self.chooser.initial_kbps()
    }

    pub fn desired_kbps(&self) -> u32 {
        self.chooser.desired_kbps()
    }
}

impl Peer {
    /// The rung whose keyframe this viewer waits for: the one it is switching to, else its own.
    pub fn keyframe_rung(&self) -> usize {
        self.ladder.as_ref().map_or(0, |l| l.to.unwrap_or(l.on))
    }

    /// Whether this viewer's loss speaks for its stream's top encoding: one encoding, or a ladder's viewer
    /// on the top rung and not switching away.
    pub fn settled_on_top(&self) -> bool {
        self.ladder.as_ref().is_none_or(|l| l.on == 0 && l.to.is_none())
    }

    /// The rungs this viewer holds a place on (its own, and the one it is switching to), for the mux to
    /// release when it goes.
    pub fn held_rungs(&self) -> Vec<usize> {
        self.ladder.as_ref().map_or_else(Vec::new, |l| std::iter::once(l.on).chain(l.to).collect())
    }

    /// A send-side estimate, a report's loss or a keyframe request came: the chooser may move the viewer.
    pub(super) fn on_link(&mut self, signal: Link<'_>, events: &mut Vec<PeerEvent>) {
        let now = self.now;
        let Some(l) = self.ladder.as_mut() else { return };
        let (decided, loss) = match signal {
            Link::Estimate(BweKind::Twcc { estimate, .. } | BweKind::Remb { estimate, .. }) => {
                (l.chooser.on_estimate(kbps(estimate), now), None)
            }
            Link::Estimate(_) => (None, None),
            Link::Loss(loss) => (l.chooser.on_loss(loss, now), Some(loss)),
            Link::Sent(kbps) => {
                l.chooser.on_sent(kbps);
                (None, None)
            }
            Link::KeyframeRequest => (l.chooser.on_keyframe_request(now), None),
        };
        if let Some(kbps) = l.chooser.estimate_kbps() {
            self.stats.transport.lock().expect("stats lock").estimate_kbps = Some(kbps);
        }
        tracing::trace!(session = %self.id, rung = l.on, estimate = ?l.chooser.estimate_kbps(), ?loss, "link");
        let switching = decided.is_some();
        if let Some(to) = decided {
            let (from, estimate_kbps) = (l.on, l.chooser.estimate_kbps());
            tracing::info!(session = %self.id, from, to, ?estimate_kbps, ?loss, "viewer switching rungs");
            self.begin_switch(to, events);
        }
        self.steer_estimator(switching);
    }

    /// Tells str0m's estimator what the chooser wants: to start over from an estimate (after heavy loss, or to
    /// probe), and after a switch the new bitrate to probe for.
    fn steer_estimator(&mut self, switched: bool) {
        let Some(l) = self.ladder.as_mut() else { return };
        let restart = l.chooser.take_restart_estimate().map(|k| Bitrate::kbps(u64::from(k)));
        let desired = switched.then(|| Bitrate::kbps(u64::from(l.desired_kbps())));
        if restart.is_none() && desired.is_none() {
            return;
        }
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut bwe = self.rtc.bwe();
            if let Some(restart) = restart {
                bwe.reset(restart);
            }
            if let Some(desired) = desired {
                bwe.set_desired_bitrate(desired);
            }
        }));
    }

    fn begin_switch(&mut self, to: usize, events: &mut Vec<PeerEvent>) {
        let Some(l) = self.ladder.as_mut() else { return };
        if let Some(old) = l.to.take() {
            l.held.clear();
            events.push(PeerEvent::LeftRung(old));
        }
        if to != l.on {
            l.to = Some(to);
            events.push(PeerEvent::JoiningRung(to));
        }
    }

    /// A video packet of the ladder's rung `p.rung`: written when it is the viewer's rung; the target's
    /// keyframe starts the switch, which completes at the end of the current rung's frame.
    pub(super) fn forward_rung(&mut self, p: &MediaPacket, ext_seq: u64, au_start: bool, events: &mut Vec<PeerEvent>) {
        let Some(l) = self.ladder.as_mut() else { return };
        let rung = usize::from(p.rung);
        if Some(rung) == l.to {
            if p.keyframe && au_start {
                // A (newer) keyframe of the target: hold from its start.
                l.held.clear();
            } else if l.held.is_empty() {
                return;
            }
            l.held.push((p.clone(), ext_seq));
            if l.at_boundary || !self.video_open || l.held.len() >= MAX_HELD {
                self.complete_switch(events);
            }
            return;
        }
        if rung != l.on {
            return;
        }
        l.at_boundary = p.marker;
        let flush = p.marker && !l.held.is_empty();
        self.write(p, ext_seq, au_start, true, events);
        if flush {
            self.complete_switch(events);
        }
    }

    /// The viewer goes to its target rung: the held packets are written, numbered on from the last sent.
    fn complete_switch(&mut self, events: &mut Vec<PeerEvent>) {
        let Some(l) = self.ladder.as_mut() else { return };
        let Some(to) = l.to.take() else { return };
        let from = std::mem::replace(&mut l.on, to);
        let held = std::mem::take(&mut l.held);
        l.at_boundary = held.last().is_some_and(|(p, _)| p.marker);
        {
            let mut t = self.stats.transport.lock().expect("stats lock");
            t.rung = Some(to as u8);
            *if to < from { &mut t.switches_up } else { &mut t.switches_down } += 1;
        }
        events.push(PeerEvent::Switched { from, to });
        if let Some((first, seq)) = held.first() {
            self.video.splice.rebase(*seq, first.timestamp);
        }
        for (i, (p, seq)) in held.iter().enumerate() {
            self.write(p, *seq, i == 0, true, events);
        }
    }
}

fn kbps(b: &Bitrate) -> u32 {
    (b.as_u64() / 1000).min(u64::from(u32::MAX)) as u32
}
