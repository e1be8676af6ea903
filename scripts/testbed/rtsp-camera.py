#!/usr/bin/python3
# rtsp-camera.py PORT [PATH]: a stand-in IP camera for tests. gst-rtsp-server serves a moving ball as H.264
# (constrained baseline, 320x240@30, a keyframe every second) at rtsp://127.0.0.1:PORT/PATH (default /ball)
# until killed. Prints "ready" on stdout once it listens.
# Needs python3-gi, gir1.2-gst-rtsp-server-1.0 (scripts/install-deps.sh --test installs them).
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
port = sys.argv[1]
path = sys.argv[2] if len(sys.argv) > 2 else "/ball"
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 "
    "! video/x-h264,profile=constrained-baseline ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
)
factory.set_shared(True)
server.get_mount_points().add_factory(path, factory)
if server.attach(None) == 0:
    sys.exit(f"rtsp-camera: cannot listen on 127.0.0.1:{port}")
print("ready", flush=True)
GLib.MainLoop().run()
