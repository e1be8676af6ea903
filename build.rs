//! Links libnice for the one libnice call glasscast makes itself (ICE restart, see src/media/webrtcbin/ice_restart.rs);
//! everything else of libnice is reached through GStreamer's webrtcnice library.

fn main() {
    if let Err(e) = pkg_config::Config::new().atleast_version("0.1.16").probe("nice") {
        panic!("libnice (pkg-config `nice`) not found: install libnice-dev (scripts/install-deps.sh does). {e}");
    }
}
