//! Shared by the Rust benchmarks (Cargo examples under bench/).

/// `WxH@FPS` -> (width, height, fps).
pub fn parse_mode(mode: &str) -> Result<(u32, u32, u32), String> {
    let bad = || format!("bad mode `{mode}` (want WxH@FPS, e.g. 1280x720@60)");
    let (size, fps) = mode.split_once('@').ok_or_else(bad)?;
    let (w, h) = size.split_once('x').ok_or_else(bad)?;
    Ok((w.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?, fps.parse().map_err(|_| bad())?))
}
