//! `[streams.ladder]`: the lower encodings of a stream's picture (its rungs), each made once for all of its
//! viewers, that the forwarding transport moves each viewer between by its own link (docs/ladder.md).
//!
//! ```toml
//! ladder = false                      # one encoding for everyone
//! ladder = true                       # the default: rungs derived from the stream's size and bitrate
//! [streams.ladder]                    # or rungs of one's own, below the stream's own (the top rung)
//! rungs = [{ height = 360, bitrate_kbps = 625 }, { height = 180, fps = 10, bitrate_kbps = 250 }]
//! ```

use serde::{Deserialize, Deserializer};

use super::{ConfigError, invalid};

/// The most rungs below the top.
pub const MAX_LOWER_RUNGS: usize = 4;
/// The lowest rung height the default ladder makes (a smaller picture helps nobody).
const MIN_DEFAULT_HEIGHT: u32 = 90;

/// One rung below the top, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RungConfig {
    /// Picture height; the width keeps the stream's aspect ratio (rounded to even).
    pub height: u32,
    /// Frames per second (default: the stream's).
    #[serde(default)]
    pub fps: Option<u32>,
    pub bitrate_kbps: u32,
}

/// `ladder`: `false`, `true`, or a table (`enabled`, `rungs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LadderConfig {
    pub enabled: bool,
    /// `None`: derived from the stream ([`default_rungs`]).
    pub rungs: Option<Vec<RungConfig>>,
}

impl Default for LadderConfig {
    fn default() -> Self {
        Self { enabled: true, rungs: None }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LadderTable {
    #[serde(default = "super::stream::yes")]
    enabled: bool,
    #[serde(default)]
    rungs: Option<Vec<RungConfig>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum LadderValue {
    Switch(bool),
    Table(LadderTable),
}

impl<'de> Deserialize<'de> for LadderConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match LadderValue::deserialize(d) {
            Ok(LadderValue::Switch(enabled)) => Ok(Self { enabled, rungs: None }),
            Ok(LadderValue::Table(t)) => Ok(Self { enabled: t.enabled, rungs: t.rungs }),
            Err(_) => Err(serde::de::Error::custom(
                "`ladder` is true, false or a table with `enabled` and `rungs = [{ height, fps, bitrate_kbps }]`",
            )),
        }
    }
}

/// One encoding of a stream's ladder, resolved: the top (the stream's own) or a lower one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rung {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
}

/// `height` at the aspect ratio of `width`x`top_height`, rounded to even.
fn width_for(width: u32, top_height: u32, height: u32) -> u32 {
    let w = (u64::from(width) * u64::from(height) + u64::from(top_height) / 2) / u64::from(top_height.max(1));
    ((w as u32) & !1).max(2)
}

/// The default rungs below `top`: half the size at a fifth of the bitrate (so a 2.5 Mbit/s stream's middle
/// rung, with audio and packet overhead, fits an 800 kbit/s link with room to spare), and a quarter of the
/// size at 10 fps and a tenth of the bitrate (at least 100 kbit/s). A rung smaller than 90 lines, or one not
/// cheaper than the rung above, is left out.
pub fn default_rungs(top: Rung) -> Vec<Rung> {
    let mut out: Vec<Rung> = Vec::new();
    for (div, fps, kbps) in [(2, top.fps, top.bitrate_kbps / 5), (4, top.fps.min(10), top.bitrate_kbps / 10)] {
        let height = (top.height / div) & !1;
        let kbps = kbps.max(100);
        let above = out.last().copied().unwrap_or(top);
        if height < MIN_DEFAULT_HEIGHT || kbps >= above.bitrate_kbps {
            break;
        }
        out.push(Rung { width: width_for(top.width, top.height, height), height, fps, bitrate_kbps: kbps });
    }
    out
}

impl LadderConfig {
    /// Every rung, the top (`top`: the stream's own size, rate and bitrate) first; just the top when off.
    pub fn rungs(&self, top: Rung) -> Vec<Rung> {
        let lower = match (&self.enabled, &self.rungs) {
            (false, _) => Vec::new(),
            (true, None) => default_rungs(top),
            (true, Some(rungs)) => rungs
                .iter()
                .map(|r| Rung {
                    width: width_for(top.width, top.height, r.height),
                    height: r.height,
                    fps: r.fps.unwrap_or(top.fps),
                    bitrate_kbps: r.bitrate_kbps,
                })
                .collect(),
        };
        std::iter::once(top).chain(lower).collect()
    }

    /// Checks configured rungs against the top (`streams[i].ladder.rungs[j]` in the error): each smaller,
    /// not faster and cheaper than the one above, at most [`MAX_LOWER_RUNGS`].
    pub(super) fn validate(&self, i: usize, top: Rung) -> Result<(), ConfigError> {
        let Some(rungs) = self.rungs.as_ref().filter(|_| self.enabled) else { return Ok(()) };
        let k = |j: usize, f: &str| format!("streams[{i}].ladder.rungs[{j}].{f}");
        if rungs.len() > MAX_LOWER_RUNGS {
            let allowed = format!("at most {MAX_LOWER_RUNGS} rungs below the stream's own");
            return Err(invalid(format!("streams[{i}].ladder.rungs"), rungs.len(), allowed));
        }
        let mut above = top;
        for (j, r) in rungs.iter().enumerate() {
            if r.height < 16 || r.height >= above.height || !r.height.is_multiple_of(2) {
                let allowed = format!("an even number from 16 to below the rung above ({})", above.height);
                return Err(invalid(k(j, "height"), r.height, allowed));
            }
            if let Some(fps) = r.fps.filter(|f| !(1..=above.fps).contains(f)) {
                return Err(invalid(k(j, "fps"), fps, format!("1 to the rung above's ({})", above.fps)));
            }
            if !(50..above.bitrate_kbps).contains(&r.bitrate_kbps) {
                let allowed = format!("50 to below the rung above's ({} kbit/s)", above.bitrate_kbps);
                return Err(invalid(k(j, "bitrate_kbps"), r.bitrate_kbps, allowed));
            }
            above = Rung { width: 0, height: r.height, fps: r.fps.unwrap_or(above.fps), bitrate_kbps: r.bitrate_kbps };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOP: Rung = Rung { width: 1280, height: 720, fps: 30, bitrate_kbps: 2500 };

    #[test]
    fn the_default_ladder_halves_then_quarters_the_picture() {
        let rungs = LadderConfig::default().rungs(TOP);
        assert_eq!(
            rungs,
            vec![
                TOP,
                Rung { width: 640, height: 360, fps: 30, bitrate_kbps: 500 },
                Rung { width: 320, height: 180, fps: 10, bitrate_kbps: 250 },
            ]
        );
        // A small stream keeps only what is worth making.
        let small = Rung { width: 320, height: 240, fps: 30, bitrate_kbps: 600 };
        let half = Rung { width: 160, height: 120, fps: 30, bitrate_kbps: 120 };
        assert_eq!(LadderConfig::default().rungs(small), vec![small, half]);
        let tiny = Rung { width: 160, height: 120, fps: 30, bitrate_kbps: 300 };
        assert_eq!(LadderConfig::default().rungs(tiny), vec![tiny]);
        assert_eq!(LadderConfig { enabled: false, rungs: None }.rungs(TOP), vec![TOP]);
    }

    #[test]
    fn configured_rungs_must_each_be_smaller_and_cheaper() {
        let cfg = |rungs: Vec<RungConfig>| LadderConfig { enabled: true, rungs: Some(rungs) };
        let r = |height, fps, bitrate_kbps| RungConfig { height, fps, bitrate_kbps };
        let ok = cfg(vec![r(540, None, 1200), r(270, Some(15), 400)]);
        assert!(ok.validate(0, TOP).is_ok());
        assert_eq!(ok.rungs(TOP)[2], Rung { width: 480, height: 270, fps: 15, bitrate_kbps: 400 });
        let err = |l: LadderConfig| l.validate(0, TOP).expect_err("invalid").to_string();
        assert!(err(cfg(vec![r(720, None, 1000)])).contains("streams[0].ladder.rungs[0].height"));
        assert!(err(cfg(vec![r(360, Some(60), 600)])).contains("ladder.rungs[0].fps"));
        assert!(err(cfg(vec![r(360, None, 600), r(180, None, 700)])).contains("ladder.rungs[1].bitrate_kbps"));
        assert!(err(cfg(vec![r(360, None, 600); 5])).contains("at most 4"));
    }
}
