//! Admission control: whether a stream takes another viewer.

use crate::media::StreamHealth;

/// Admission control: a stream with viewers is overloaded (more viewers would make every viewer's picture
/// worse) when its encoder has fallen below 80% of its frame rate (the fan-out starves the encoder on this
/// machine) — of the configured rate, or of what its source delivers when that is less (a still screen, a
/// 15 fps camera: a slow source is not the fan-out's doing) —, or when the forwarding transport's mux
/// sends packets more than [`MAX_SEND_LAG_MS`] after they were made (its thread cannot keep up). Without viewers neither is the fan-out's doing, so joins are
/// allowed. Returns why.
pub(super) fn overloaded(viewers: usize, health: &StreamHealth, target_fps: u32) -> Option<String> {
    if viewers == 0 {
        return None;
    }
    let expected = health.raw_fps.map_or(f64::from(target_fps), |raw| raw.min(f64::from(target_fps)));
    if let Some(fps) = health.encoded_fps.filter(|fps| *fps < 0.8 * expected) {
        return Some(format!("it encodes {fps:.1} of the {expected:.0} frames per second its source delivers"));
    }
    if let Some(lag) = health.send_lag_ms.filter(|lag| *lag > MAX_SEND_LAG_MS) {
        return Some(format!("its packets leave {lag:.0} ms after they are made (the media thread is saturated)"));
    }
    None
}

/// The forwarding transport's send lag (smoothed) above which a stream takes no new viewers.
const MAX_SEND_LAG_MS: f64 = 10.0;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::StreamState;

    fn health(fps: Option<f64>, lag: Option<f64>) -> StreamHealth {
        health_with_source(fps, None, lag)
    }

    fn health_with_source(fps: Option<f64>, raw_fps: Option<f64>, lag: Option<f64>) -> StreamHealth {
        StreamHealth {
            state: StreamState::Playing,
            frames: 100,
            encoded_bytes: 0,
            last_frame_age: None,
            encoded_fps: fps,
            raw_frames: 100,
            raw_fps,
            frames_dropped: 0,
            pushes: Vec::new(),
            recording: None,
            vp8: None,
            ladder: Vec::new(),
            encoder: "x264enc",
            encoders_rejected: Vec::new(),
            source_problem: None,
            restarts: 0,
            restart_problem: None,
            viewer_pads: 0,
            keyframes_requested: 0,
            keyframes_sent: 0,
            bitrate_kbps: 2500,
            send_lag_ms: lag,
        }
    }

    #[test]
    fn admission_refuses_only_a_starving_stream_with_viewers() {
        let refuses = |viewers, fps, target| overloaded(viewers, &health(fps, None), target).is_some();
        assert!(!refuses(0, Some(5.0), 30), "no viewers: a slow encoder is not the fan-out's doing");
        assert!(!refuses(10, None, 30), "no rate known yet");
        assert!(!refuses(10, Some(29.7), 30));
        assert!(!refuses(10, Some(24.0), 30), "80% exactly still passes");
        assert!(refuses(10, Some(23.9), 30));
        assert!(refuses(1, Some(0.5), 60));
    }

    #[test]
    fn admission_holds_the_encoder_to_what_its_source_delivers() {
        let refuses = |fps, raw| overloaded(10, &health_with_source(Some(fps), Some(raw), None), 30).is_some();
        assert!(!refuses(15.0, 15.0), "a 15 fps camera is not a starving encoder");
        assert!(!refuses(28.0, 28.5), "a still screen repeated by keepalive");
        assert!(refuses(10.0, 15.0), "the encoder keeps two thirds of a slow source's frames");
        assert!(refuses(20.0, 60.0), "a source faster than the configured rate still expects that rate");
        let why = overloaded(10, &health_with_source(Some(10.0), Some(15.0), None), 30).expect("refused");
        assert!(why.contains("10.0 of the 15"), "{why}");
    }

    #[test]
    fn admission_refuses_when_the_mux_lags() {
        assert_eq!(overloaded(10, &health(Some(30.0), Some(3.0)), 30), None);
        let why = overloaded(10, &health(Some(30.0), Some(45.0)), 30).expect("refused");
        assert!(why.contains("45 ms"), "{why}");
        assert_eq!(overloaded(0, &health(Some(30.0), Some(45.0)), 30), None);
    }
}
