use std::time::{Duration, Instant};

use super::*;

/// The default ladder of a 1280x720 2.5 Mbit/s stream.
fn chooser(t0: Instant) -> Chooser {
    Chooser::new(vec![2500, 625, 250], t0)
}

/// Feeds an estimate of `kbps` every 100 ms for `secs` from `*t`, advancing it; returns every switch.
fn feed(c: &mut Chooser, t: &mut Instant, kbps: u32, secs: f64) -> Vec<usize> {
    let mut switches = Vec::new();
    for _ in 0..(secs * 10.0) as u32 {
        *t += Duration::from_millis(100);
        switches.extend(c.on_estimate(kbps, *t));
    }
    switches
}

/// [`feed`], with a report of `loss` every second too (as a link that drops what exceeds it shows).
fn feed_lossy(c: &mut Chooser, t: &mut Instant, kbps: u32, loss: f32, secs: f64) -> Vec<usize> {
    let mut switches = Vec::new();
    for i in 0..(secs * 10.0) as u32 {
        if i % 10 == 0 {
            switches.extend(c.on_loss(loss, *t));
        }
        switches.extend(feed(c, t, kbps, 0.1));
    }
    switches
}

#[test]
fn a_link_falling_below_the_rung_moves_down_within_a_second_to_what_fits() {
    let t0 = Instant::now();
    let mut t = t0;
    let mut c = chooser(t0);
    assert_eq!(c.initial_kbps(), (2500.0 * FIT_MARGIN) as u32 + AUDIO_KBPS);
    assert!(feed(&mut c, &mut t, 3000, 5.0).is_empty(), "a clean link stays on the top rung");
    // 800 kbit/s carries the middle rung (625 * 1.15 + 64 = 783) but not the top.
    let switched = feed_lossy(&mut c, &mut t, 800, 0.04, 1.0);
    assert_eq!(switched, vec![1], "moved to the middle rung within a second, once");
    assert_eq!(c.rung(), 1);
    // 300 kbit/s: the bottom, once DOWN_EVERY has passed since the last move.
    assert_eq!(feed_lossy(&mut c, &mut t, 300, 0.04, 4.5), vec![2]);
    assert!(feed_lossy(&mut c, &mut t, 100, 0.04, 3.0).is_empty(), "nothing below the bottom");
}

#[test]
fn without_loss_a_low_estimate_moves_down_only_after_it_lasts() {
    let t0 = Instant::now();
    let mut t = t0;
    let mut c = chooser(t0);
    // A delay-based dip with no loss, to 60% of the top's need: never believed.
    assert!(feed(&mut c, &mut t, 1500, 10.0).is_empty());
    // Far short (under LOSSLESS_SHORT): not yet after a second, but after DOWN_AFTER_LOSSLESS.
    assert!(feed(&mut c, &mut t, 1000, 3.5).is_empty());
    assert_eq!(feed(&mut c, &mut t, 1000, 1.0), vec![1]);
    // With loss reported, half a second is enough.
    let mut c = chooser(t0);
    let mut t = t0;
    c.on_loss(0.03, t);
    assert_eq!(feed(&mut c, &mut t, 1500, 0.7), vec![1]);
}

#[test]
fn a_keyframe_request_right_after_an_up_switch_goes_back_down() {
    let t0 = Instant::now();
    let mut t = t0;
    let mut c = chooser(t0);
    c.on_estimate(900, t);
    assert_eq!(c.on_loss(0.5, t), Some(1));
    assert_eq!(c.on_keyframe_request(t + Duration::from_millis(200)), None, "no up-switch to blame");
    assert_eq!(c.take_restart_estimate(), Some((625.0 * FIT_MARGIN) as u32 + AUDIO_KBPS), "str0m starts over");
    // The loss was the top's: the middle's estimate carries the top after the hold.
    let hold = UP_HOLD.as_secs_f64();
    assert!(feed(&mut c, &mut t, 5000, hold - 0.5).is_empty());
    assert_eq!(feed(&mut c, &mut t, 5000, 1.0), vec![0]);
    assert_eq!(c.on_keyframe_request(t + Duration::from_millis(300)), Some(1));
    // The next up waits twice as long.
    let mut t = t + Duration::from_millis(300);
    assert!(feed(&mut c, &mut t, 5000, 2.0 * hold - 0.5).is_empty());
    assert_eq!(feed(&mut c, &mut t, 5000, 1.0), vec![0]);
    assert_eq!(c.on_keyframe_request(t + Duration::from_secs(11)), None, "long after the switch: just a PLI");
}

#[test]
fn heavy_loss_with_a_short_estimate_moves_down_a_rung_at_once_and_loss_alone_moves_nobody() {
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);
    let mut c = chooser(t0);
    // Random loss on a link with room (the estimate carries the top): stays.
    c.on_estimate(3000, t0);
    assert_eq!(c.on_loss(0.3, ms(10)), None);
    // The estimate agrees it is short: at once.
    c.on_estimate(2000, ms(20));
    assert_eq!(c.on_loss(0.3, ms(30)), Some(1));
    // Not again within DOWN_EVERY.
    c.on_estimate(300, ms(1000));
    assert_eq!(c.on_loss(0.3, ms(2000)), None);
    assert_eq!(c.on_loss(0.3, ms(4100)), Some(2));
    // No estimate at all (a client without transport-wide CC): never moved.
    let mut c = chooser(t0);
    assert_eq!(c.on_loss(0.5, ms(10)), None);
    assert_eq!(c.on_loss(0.5, ms(5000)), None);
}

#[test]
fn up_one_rung_at_a_time_after_the_hold_and_a_failed_up_doubles_the_hold() {
    let t0 = Instant::now();
    let mut t = t0;
    let mut c = chooser(t0);
    feed(&mut c, &mut t, 200, 5.0);
    assert_eq!(c.rung(), 2);
    assert_eq!(
        c.desired_kbps(),
        (625.0 * UP_MARGIN + f64::from(AUDIO_KBPS)).ceil() as u32,
        "probes for the rung above"
    );
    // Plenty again: up one rung after UP_HOLD, then the next after another.
    let hold = UP_HOLD.as_secs_f64();
    let ups = feed(&mut c, &mut t, 5000, hold - 0.5);
    assert!(ups.is_empty(), "not before the hold: {ups:?}");
    assert_eq!(feed(&mut c, &mut t, 5000, 1.0), vec![1]);
    assert_eq!(feed(&mut c, &mut t, 5000, hold + 0.5), vec![0]);
    // The top fails at once: down, and the next up waits twice as long.
    assert_eq!(feed(&mut c, &mut t, 900, 4.5), vec![1]);
    assert!(feed(&mut c, &mut t, 5000, 2.0 * hold - 0.5).is_empty(), "the hold doubled");
    assert_eq!(feed(&mut c, &mut t, 5000, 1.0), vec![0]);
}

#[test]
fn a_link_changing_every_ten_seconds_switches_a_bounded_number_of_times() {
    let t0 = Instant::now();
    let mut t = t0;
    let mut c = chooser(t0);
    let mut switches = 0;
    for i in 0..30 {
        let (kbps, loss) = if i % 2 == 0 { (5000, 0.0) } else { (1500, 0.05) };
        switches += feed_lossy(&mut c, &mut t, kbps, loss, 10.0).len();
    }
    // 1500 kbit/s sits between the middle and the top: each period at most one down and one up.
    assert!(switches <= 30, "{switches} switches in 5 minutes");
    assert!(switches >= 2, "it did follow the link");
}

#[test]
fn an_estimate_between_the_thresholds_never_switches() {
    let t0 = Instant::now();
    let mut t = t0;
    let mut c = chooser(t0);
    feed(&mut c, &mut t, 800, 5.0);
    assert_eq!(c.rung(), 1);
    // Above the middle's bitrate, below the top's up-threshold: stays, however long.
    assert!(feed(&mut c, &mut t, 2600, 120.0).is_empty());
}

#[test]
fn the_splice_keeps_sequence_numbers_continuous_and_timestamps_rising_across_lanes() {
    let mut s = Splice::default();
    assert_eq!(s.map(70_000, 9000), (1, 9000));
    assert_eq!(s.map(70_001, 9000), (2, 9000));
    // A gap within the lane stays a gap (the viewer NACKs it).
    assert_eq!(s.map(70_003, 12_000), (4, 12_000));
    // Another lane, whose frame is later: its own numbers, rebased; the timestamp as it is.
    s.rebase(500, 15_000);
    assert_eq!(s.map(500, 15_000), (5, 15_000));
    assert_eq!(s.map(501, 18_000), (6, 18_000));
    // A lane whose frame is not later than the last sent: moved just past it, for the rest of the lane.
    s.rebase(9, 17_000);
    assert_eq!(s.map(9, 17_000), (7, 18_001));
    assert_eq!(s.map(10, 20_000), (8, 21_001));
    // Wrapping timestamps compare by distance.
    let mut w = Splice::default();
    w.map(1, u32::MAX - 10);
    w.rebase(100, 5);
    assert_eq!(w.map(100, 5), (2, 5));
}
