#!/usr/bin/env python3
"""A WHEP viewer on GStreamer's webrtcbin (libnice: ICE over UDP and TCP), through PyGObject, as a process of
its own so a test can run it inside a network namespace.

    webrtcbin_watch.py URL [--frames N] [--seconds S]

Offers H.264 (constrained-baseline, packetization-mode 1) and Opus, receive only; decodes the video
(avdec_h264) and counts frames until --frames arrive or --seconds pass. Prints one JSON line:
{"status", "frames", "width", "height"}; exit 0 when --frames were decoded.
"""
import argparse
import json
import ssl
import sys
import time
import urllib.error
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

VIDEO = ("application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000,"
         "packetization-mode=(string)1,profile-level-id=(string)42e01f")
AUDIO = "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000"


def post(url, sdp):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    req = urllib.request.Request(url, data=sdp.encode(), method="POST",
                                 headers={"Content-Type": "application/sdp"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=20) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


# What a reply holds (an offer) lives only as long as the reply and its promise: keep them all.
PROMISES = []


def call(webrtcbin, action, arg):
    promise = Gst.Promise.new()
    PROMISES.append(promise)
    webrtcbin.emit(action, arg, promise)
    promise.wait()
    reply = promise.get_reply()
    PROMISES.append(reply)
    return reply


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--seconds", type=float, default=25)
    args = p.parse_args()
    Gst.init(None)
    pipeline = Gst.Pipeline.new("viewer")
    webrtcbin = Gst.ElementFactory.make("webrtcbin", "w")
    webrtcbin.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
    pipeline.add(webrtcbin)
    seen = {"frames": 0, "width": None, "height": None}
    recv = GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY
    webrtcbin.emit("add-transceiver", recv, Gst.Caps.from_string(VIDEO))
    webrtcbin.emit("add-transceiver", recv, Gst.Caps.from_string(AUDIO))

    def on_frame(pad, info):
        caps = pad.get_current_caps()
        if caps is not None:
            st = caps.get_structure(0)
            seen["width"], seen["height"] = st.get_value("width"), st.get_value("height")
        seen["frames"] += 1
        return Gst.PadProbeReturn.OK

    def on_pad(_w, pad):
        caps = pad.get_current_caps() or pad.query_caps(None)
        media = caps.get_structure(0).get_value("media")
        desc = ("rtph264depay ! avdec_h264 ! videoconvert ! fakesink name=out sync=false" if media == "video"
                else "fakesink sync=false")
        sink = Gst.parse_bin_from_description(desc, True)
        pipeline.add(sink)
        sink.sync_state_with_parent()
        pad.link(sink.get_static_pad("sink"))
        if media == "video":
            out = sink.get_by_name("out")
            out.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, on_frame)

    webrtcbin.connect("pad-added", on_pad)
    pipeline.set_state(Gst.State.PLAYING)
    offer = call(webrtcbin, "create-offer", None).get_value("offer")
    call(webrtcbin, "set-local-description", offer)
    deadline = time.monotonic() + 10
    while (webrtcbin.get_property("ice-gathering-state") != GstWebRTC.WebRTCICEGatheringState.COMPLETE
           and time.monotonic() < deadline):
        time.sleep(0.05)
    local = webrtcbin.get_property("local-description").sdp.as_text()
    status, body = post(args.url, local)
    report = {"status": status, **seen}
    if status == 201:
        _, sdp = GstSdp.SDPMessage.new_from_text(body)
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
        call(webrtcbin, "set-remote-description", answer)
        ctx = GLib.MainContext.default()
        deadline = time.monotonic() + args.seconds
        while seen["frames"] < args.frames and time.monotonic() < deadline:
            ctx.iteration(False)
            time.sleep(0.02)
        report.update(seen)
    print(json.dumps(report), flush=True)
    pipeline.set_state(Gst.State.NULL)
    sys.exit(0 if seen["frames"] >= args.frames else 1)


if __name__ == "__main__":
    main()
