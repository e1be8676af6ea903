//! The push's sink: gst-plugins-rs' webrtcsink with the signaller the endpoint needs, `whipclientsink` (WHIP,
//! RFC 9725) or `janusvrwebrtcsink` (a Janus VideoRoom publisher over Janus' WebSocket API).

use anyhow::{Context, bail};
use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;

use crate::push::Endpoint;

/// whipclientsink's timeout for the POST and the DELETE, in seconds.
const HTTP_TIMEOUT_S: u32 = 10;

/// The attempt's webrtcsink, its signaller set up for the endpoint.
pub(super) fn make(endpoint: &Endpoint, token: Option<&str>, stream: &str) -> anyhow::Result<gst::Element> {
    let factory = match endpoint {
        Endpoint::Whip { .. } => gst::ElementFactory::make("whipclientsink"),
        // Construct-only; the signaller's id properties take strings or u64s accordingly.
        Endpoint::Janus(room) => {
            gst::ElementFactory::make("janusvrwebrtcsink").property("use-string-ids", room.string_ids())
        }
    };
    let sink = factory
        // No STUN (webrtcsink's default is Google's): our host candidates reach an endpoint with a public
        // address, which learns our public one from the checks (peer-reflexive).
        .property("stun-server", None::<String>)
        .property_from_str("congestion-control", "disabled")
        .property("do-fec", false)
        .build()
        .with_context(|| format!("creating the {} push's sink", endpoint.protocol()))?;
    let signaller = sink.property::<glib::Object>("signaller");
    match endpoint {
        Endpoint::Whip { url } => {
            signaller.set_property("whip-endpoint", url.as_str());
            signaller.set_property("auth-token", token);
            signaller.set_property("timeout", HTTP_TIMEOUT_S);
        }
        Endpoint::Janus(room) => {
            signaller.set_property("janus-endpoint", room.ws.as_str());
            signaller.set_property("secret-key", token);
            signaller.set_property("display-name", room.display.as_deref().unwrap_or(stream));
            set_janus_id(&signaller, "room-id", &room.room)?;
            if let Some(feed) = &room.feed {
                set_janus_id(&signaller, "feed-id", feed)?;
            }
        }
    }
    Ok(sink)
}

/// A Janus id property: a string with `use-string-ids`, else a u64 ([`crate::push::JanusRoom::string_ids`]).
fn set_janus_id(signaller: &glib::Object, property: &str, id: &str) -> anyhow::Result<()> {
    match signaller.find_property(property).map(|p| p.value_type()) {
        Some(t) if t == glib::Type::U64 => signaller.set_property(property, id.parse::<u64>()?),
        Some(t) if t == glib::Type::STRING => signaller.set_property(property, id),
        other => bail!("the Janus signaller's `{property}` has an unexpected type {other:?}"),
    }
    Ok(())
}
