#!/usr/bin/python3
# rtsp-camera.py PORT [PATH] [--bframes]: a stand-in IP camera for tests. gst-rtsp-server serves a moving
# ball as H.264 (constrained baseline, 320x240@30, a keyframe every second; with --bframes: High profile
# with 2 B-frames, as many real cameras send) at rtsp://127.0.0.1:PORT/PATH (default /ball) until killed.
# Prints "ready" on stdout once it listens.
# Needs python3-gi, gir1.2-gst-rtsp-server-1.0 (scripts/install-deps.sh --test installs them).
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
args = [a for a in sys.argv[1:] if not a.startswith("--")]
bframes = "--bframes" in sys.argv
port = args[0]
path = args[1] if len(args) > 1 else "/ball"
encode = (
    "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30"
    + (" bframes=2 b-adapt=false ! video/x-h264,profile=high" if bframes else " ! video/x-h264,profile=constrained-baseline")
)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 "
    f"! {encode} ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
)
factory.set_shared(True)
server.get_mount_points().add_factory(path, factory)
if server.attach(None) == 0:
    sys.exit(f"rtsp-camera: cannot listen on 127.0.0.1:{port}")
print("ready", flush=True)
GLib.MainLoop().run()
