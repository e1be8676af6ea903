//! The RTP header extension `http://www.webrtc.org/experiments/rtp-hdrext/playout-delay` (the "playout delay"
//! extension browsers offer for video), sent with min = max = 0 on every video packet. It asks the receiver to
//! show each frame as soon as it is decoded: Chromium then skips its render-smoothing delay and keeps its
//! jitter buffer at the minimum. Cloud-gaming services send the same.
//!
//! A `GstRTPHeaderExtension` subclass, added to a branch's payloader with its `add-extension` action: the
//! payloader writes it into each packet and states `extmap-<id>` on its caps, from which webrtcbin answers the
//! offer's `a=extmap` line.

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_rtp as gst_rtp;
use gstreamer_rtp::prelude::*;

mod imp {
    use gstreamer as gst;
    use gstreamer::glib;
    use gstreamer::subclass::prelude::*;
    use gstreamer_rtp as gst_rtp;
    use gstreamer_rtp::subclass::prelude::*;

    #[derive(Default)]
    pub struct PlayoutDelay;

    #[glib::object_subclass]
    impl ObjectSubclass for PlayoutDelay {
        const NAME: &'static str = "GlasscastPlayoutDelay";
        type Type = super::PlayoutDelay;
        type ParentType = gst_rtp::RTPHeaderExtension;
    }

    impl ObjectImpl for PlayoutDelay {}
    impl GstObjectImpl for PlayoutDelay {}

    impl ElementImpl for PlayoutDelay {
        fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
            static META: std::sync::LazyLock<gst::subclass::ElementMetadata> = std::sync::LazyLock::new(|| {
                gst::subclass::ElementMetadata::new(
                    "Playout delay RTP header extension (zero)",
                    "Network/Extension/RTPHeader",
                    "Asks receivers to render frames as soon as they are decoded",
                    "glasscast",
                )
            });
            Some(&*META)
        }
    }

    impl RTPHeaderExtensionImpl for PlayoutDelay {
        const URI: &'static str = crate::media::offer::negotiate::PLAYOUT_DELAY_URI;

        fn supported_flags(&self) -> gst_rtp::RTPHeaderExtensionFlags {
            gst_rtp::RTPHeaderExtensionFlags::ONE_BYTE | gst_rtp::RTPHeaderExtensionFlags::TWO_BYTE
        }

        fn max_size(&self, _input: &gst::BufferRef) -> usize {
            3
        }

        /// 12 bits min delay, 12 bits max delay, in 10 ms units: all zero.
        fn write(
            &self,
            _input: &gst::BufferRef,
            _flags: gst_rtp::RTPHeaderExtensionFlags,
            _output: &gst::BufferRef,
            data: &mut [u8],
        ) -> Result<usize, gst::LoggableError> {
            let out = data
                .get_mut(..3)
                .ok_or_else(|| gst::loggable_error!(gst::CAT_RUST, "no room for the playout-delay extension"))?;
            out.fill(0);
            Ok(3)
        }

        fn read(
            &self,
            _flags: gst_rtp::RTPHeaderExtensionFlags,
            _data: &[u8],
            _output: &mut gst::BufferRef,
        ) -> Result<(), gst::LoggableError> {
            Ok(())
        }
    }
}

glib::wrapper! {
    pub struct PlayoutDelay(ObjectSubclass<imp::PlayoutDelay>)
        @extends gst_rtp::RTPHeaderExtension, gst::Element, gst::Object;
}

/// Adds a zero playout-delay extension with the offered `id` to `payloader`.
pub fn add_to(payloader: &gst::Element, id: u8) {
    let ext: PlayoutDelay = glib::Object::new();
    ext.set_id(u32::from(id));
    payloader.emit_by_name::<()>("add-extension", &[&ext.upcast::<gst_rtp::RTPHeaderExtension>()]);
}
