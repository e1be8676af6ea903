#!/usr/bin/env python3
"""A WHIP publisher or WHEP viewer on aiortc (a Python WebRTC stack glasscast does not implement).

    aiortc_peer.py publish URL [--token T] [--videos N] [--audio] [--datachannel] [--size WxH]
    aiortc_peer.py watch URL [--token T] [--videos N] [--audio] [--datachannel] [--frames N] [--seconds S]
                       [--relay-from-link] [--video-codec vp8]

publish: sends N video tracks (H.264 or VP8 as negotiated; a moving bar at WxH, 30 fps), an audio track
(Opus) and a data channel as asked, POSTs the offer, applies the answer and runs until stdin closes; then
DELETEs its resource. Prints one JSON line after the POST: {"status", "location", "answer"} (and exits 1
unless 201), then {"event": "connected", "media", "connection"} when the media transport is up.

watch: receives N video sections (only the first is expected to carry media), audio and a data channel as
asked, and counts decoded frames until --frames arrive or --seconds pass. Prints one JSON line: {"status",
"answer", "frames", "width", "height", "audio_frames", "connection", "ice_servers"}; exit 0 when --frames
were decoded. --relay-from-link: a first POST only learns the TURN servers from its `Link: rel="ice-server"`
headers (and DELETEs that session); the real one then gathers relay candidates only (iceTransportPolicy
"relay"), so it plays only if those credentials work.
"""
import argparse
import asyncio
import json
import ssl
import sys
import urllib.error
import urllib.request

import re

import av
from aiortc import (MediaStreamTrack, RTCConfiguration, RTCIceServer,
                    RTCIceTransportPolicy, RTCPeerConnection, RTCRtpReceiver,
                    RTCSessionDescription)
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack


class MovingBar(VideoStreamTrack):
    """A white bar moving across a dark frame, so every frame differs (encoders skip nothing)."""

    def __init__(self, width, height):
        super().__init__()
        self.width, self.height, self.n = width, height, 0

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        bar = self.width // 8
        x = (self.n * 4) % (self.width - bar)
        self.n += 1
        row = b"\x20" * x + b"\xeb" * bar + b"\x20" * (self.width - x - bar)
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        frame.planes[0].update(row * self.height)
        chroma = (self.width // 2) * (self.height // 2)
        frame.planes[1].update(b"\x80" * chroma)
        frame.planes[2].update(b"\x80" * chroma)
        frame.pts, frame.time_base = pts, time_base
        return frame


def request(method, url, token, body=None, content_type=None):
    """One HTTP request (a self-signed certificate is accepted: the server is the test's own)."""
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if content_type:
        headers["Content-Type"] = content_type
    req = urllib.request.Request(url, data=body.encode() if body else None, headers=headers, method=method)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=20) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def absolute(base, location):
    if location.startswith("http"):
        return location
    scheme_host = base.split("/", 3)[:3]
    return "/".join(scheme_host) + location


def ice_servers(links):
    """RTCIceServers from `Link: <url>; rel="ice-server"; username="u"; credential="c"` header values."""
    out = []
    for link in links:
        for part in re.split(r",\s*(?=<)", link):
            url = re.match(r"\s*<([^>]+)>", part)
            if not url or 'rel="ice-server"' not in part:
                continue
            params = dict(re.findall(r'(\w[\w-]*)="((?:[^"\\]|\\.)*)"', part))
            out.append({"urls": url.group(1), "username": params.get("username"),
                        "credential": params.get("credential")})
    return out


async def negotiate(pc, args, learn=None):
    await pc.setLocalDescription(await pc.createOffer())
    loop = asyncio.get_running_loop()
    status, headers, body = await loop.run_in_executor(
        None, request, "POST", args.url, args.token, pc.localDescription.sdp, "application/sdp")
    location = headers.get("Location") or headers.get("location")
    if learn is not None:
        learn.extend(ice_servers([v for k, v in headers.items() if k.lower() == "link"]))
    if status == 201:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
    return status, location and absolute(args.url, location), body


def print_line(obj):
    print(json.dumps(obj), flush=True)


async def publish(args):
    width, height = (int(v) for v in args.size.split("x"))
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    for _ in range(args.videos):
        pc.addTransceiver(MovingBar(width, height), direction="sendonly")
    if args.audio:
        pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    if args.datachannel:
        pc.createDataChannel("chat")
    status, location, body = await negotiate(pc, args)
    print_line({"status": status, "location": location, "answer": body})
    if status != 201:
        await pc.close()
        return 1
    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    # The media path: the first video sender's DTLS transport (the BUNDLE transport). aiortc's own
    # connectionState also waits for a transport for every section it offered, rejected ones included (it
    # ignores port 0), so with a refused data channel it says "connecting" while the media flows.
    media = pc.getTransceivers()[0].sender.transport
    for _ in range(200):
        if media.state in ("connected", "failed", "closed"):
            break
        await asyncio.sleep(0.1)
    event = "connected" if media.state == "connected" else "not connected"
    print_line({"event": event, "media": media.state, "connection": pc.connectionState})
    await stdin_closed
    await loop.run_in_executor(None, request, "DELETE", location, args.token)
    await pc.close()
    return 0


async def learn_ice_servers(args):
    """POSTs once only to read the Link headers, then DELETEs that session."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    learned = []
    _, location, _ = await negotiate(pc, args, learned)
    if location:
        await asyncio.get_running_loop().run_in_executor(None, request, "DELETE", location, args.token)
    await pc.close()
    return learned


async def watch(args):
    config = RTCConfiguration(iceServers=[])
    learned = []
    if args.relay_from_link:
        learned = await learn_ice_servers(args)
        servers = [RTCIceServer(**s) for s in learned if s["urls"].startswith("turn")]
        config = RTCConfiguration(iceServers=servers, iceTransportPolicy=RTCIceTransportPolicy.RELAY)
    pc = RTCPeerConnection(config)
    for _ in range(args.videos):
        t = pc.addTransceiver("video", direction="recvonly")
        if args.video_codec:
            wanted = ("video/" + args.video_codec.lower(), "video/rtx")
            caps = RTCRtpReceiver.getCapabilities("video").codecs
            t.setCodecPreferences([c for c in caps if c.mimeType.lower() in wanted])
    if args.audio:
        pc.addTransceiver("audio", direction="recvonly")
    if args.datachannel:
        pc.createDataChannel("chat")
    seen = {"frames": 0, "width": None, "height": None, "audio_frames": 0}
    enough = asyncio.Event()

    async def consume(track: MediaStreamTrack):
        while True:
            try:
                frame = await track.recv()
            except Exception:
                return
            if track.kind == "audio":
                seen["audio_frames"] += 1
                continue
            seen["frames"] += 1
            seen["width"], seen["height"] = frame.width, frame.height
            if seen["frames"] >= args.frames:
                enough.set()

    @pc.on("track")
    def on_track(track):
        asyncio.ensure_future(consume(track))

    status, location, body = await negotiate(pc, args)
    if status == 201:
        try:
            await asyncio.wait_for(enough.wait(), args.seconds)
        except asyncio.TimeoutError:
            pass
    print_line({"status": status, "answer": body, "connection": pc.connectionState, "ice_servers": learned, **seen})
    if location:
        await asyncio.get_running_loop().run_in_executor(None, request, "DELETE", location, args.token)
    await pc.close()
    return 0 if seen["frames"] >= args.frames else 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["publish", "watch"])
    p.add_argument("url")
    p.add_argument("--token")
    p.add_argument("--videos", type=int, default=1)
    p.add_argument("--audio", action="store_true")
    p.add_argument("--datachannel", action="store_true")
    p.add_argument("--size", default="320x240")
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--relay-from-link", action="store_true")
    p.add_argument("--video-codec", help="watch: offer only this video codec (vp8, h264)")
    args = p.parse_args()
    run = publish if args.role == "publish" else watch
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
