#!/usr/bin/python3
"""portal-check.py — self-test of the headless ScreenCast testbed (scripts/testbed/wayland-session.sh).

Usage:
    scripts/testbed/portal-check.py DIR [--as-root] [--quick] [--frames N] [--runs N] [--png FILE]
                                        [--token-file FILE]
      DIR           the testbed directory given to `wayland-session.sh start DIR` (reads DIR/env)
      --as-root     when started as root, stay root (needs the default TESTBED_ALLOW_ROOT=1); by default a root
                    caller re-executes itself as the session uid through DIR/as-user
      --quick       only the persist_mode=2 runs (1 and 2)
      --frames N    frames to pull from PipeWire per run (default 30)
      --runs N      restore-token runs after the first (default 1)
      --png FILE    write the last frame of run 1 as a PNG (to look at; the uid running the check writes it)
      --token-file  if FILE holds a token, run 1 restores it (proves persistence across processes); the last
                    persistent token is written back to FILE
    Needs python3-gi, gir1.2-gstreamer-1.0, gstreamer1.0-pipewire (wayland-session.sh installs them).
    Exit status 0 = every check passed; the last line is "N passed, M failed".

Each run, on the testbed's private session bus, through org.freedesktop.portal.ScreenCast:
    CreateSession -> SelectSources(types=MONITOR, multiple=false, cursor_mode=EMBEDDED if offered else HIDDEN,
    persist_mode [, restore_token]) -> Start -> OpenPipeWireRemote; prints the restore_token and the stream's
    node id and size (checked == the testbed's mode); then pulls N frames in-process from
    `pipewiresrc fd=FD path=NODE ! videoconvert ! appsink` (GStreamer via gi: the same elements as
    `gst-launch-1.0 pipewiresrc fd=FD path=NODE num-buffers=30 ! videoconvert ! fakesink`, but it can count
    frames, time them and check their caps) within 15 s; run 1 also runs that literal gst-launch-1.0 command
    (num-buffers=N) on a second OpenPipeWireRemote fd: exit 0 = N buffers arrived, then EOS; then Session.Close.
    run 1  persist_mode=2, no token                -> a restore_token
    run 2  persist_mode=2, run 1's token           -> Start OK, xdpw got restore_data (its log says
                                                       "restore data available"), the SAME token comes back
    run 3  persist_mode=2, an unknown token        -> Start OK, no restore_data to xdpw, a new token
    run 4  persist_mode=1 (transient), no token    -> a token
    run 5  persist_mode=1, run 4's token           -> restored (transient tokens only work for the same D-Bus
                                                       connection: the portal keys them by sender)

Restore-token behaviour observed (xdg-desktop-portal 1.16.0 + xdpw 0.7.0):
  * xdpw 0.7 does support restore: Start returns restore_data ("wlroots", 1, {output_name}) and
    SelectSources with restore_data looks the output up by name (xdpw_wlr_target_from_data) before falling back
    to its chooser. The frontend turns restore_data into a UUID restore_token; persistent ones go to the
    permission store (table "screencast", app id "" for host apps).
  * A used token is deleted and, when Start returns restore_data again, re-saved under the SAME string, so a
    client keeps getting the token it passed (the spec says to always store the returned one; do that).
  * An unknown token is silently ignored (the chooser runs; here chooser_type=none picks HEADLESS-1 anyway).
  * xdpw 0.7's Start reads persist_mode from a list iterator after its loop (method_screencast_start:
    `sess` is past the end of the session list, i.e. it reads the global state), so it always sends
    restore_data; the XDPW_PERSIST_MODE variable that should gate it makes no difference. The frontend then uses
    the client's persist_mode, so persist_mode=0 gives no token and 1/2 work as shown.
  * xdpw reports source_type 2 (WINDOW) for the monitor stream (it sends 1 << MONITOR); printed as a note.

Verified here (Debian 12, xdg-desktop-portal 1.16.0, patched xdpw 0.7.0, PipeWire 0.3.65, GStreamer 1.22):
all 59 checks pass as uid 65534 and as root, 5 testbeds in a row; the PNG shows the videotestsrc ball, full
screen. Frames: RGB 1280x720 (caps framerate 0/1, max-framerate 30/1), ~29.5 fps, first frame 0.02-0.03 s
after PLAYING; Start..OpenPipeWireRemote handshake 0.02-0.05 s.
Timings measured here: one run ~1.05 s (mostly the 30 frames at 30 fps; run 1 ~2.1 s with the gst-launch
pass); default (5 runs) ~6.2 s, --quick ~3.1 s.
Caveats: the "xdpw got restore_data" check reads DIR/logs/xdpw.log (xdpw runs with -l INFO), so it needs that
log; with TESTBED_XDPW_BIN=stock xdpw, Start fails (response 2), which is the point of the patch.
"""
import argparse
import os
import re
import subprocess
import sys
import time
import uuid

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("dir")
ap.add_argument("--as-root", action="store_true")
ap.add_argument("--frames", type=int, default=30)
ap.add_argument("--png")
ap.add_argument("--runs", type=int, default=1)
ap.add_argument("--quick", action="store_true", help="only the persist_mode=2 runs (no unknown/transient token)")
ap.add_argument("--token-file", help="if FILE holds a token, run 1 restores it (a token from an earlier process); "
                "the last persistent token is written back to FILE")
args = ap.parse_args()
TB = os.path.abspath(args.dir)


def load_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            m = re.match(r"export (\w+)=(.*)$", line.strip())
            if m:
                env[m.group(1)] = m.group(2).strip("'")
    return env


ENV = load_env(os.path.join(TB, "env"))
if os.geteuid() == 0 and not args.as_root:
    # re-exec as the session user (same arguments); DIR/as-user sets up the environment
    os.execv(os.path.join(TB, "as-user"), [os.path.join(TB, "as-user"), sys.executable, os.path.abspath(__file__)]
             + sys.argv[1:])
os.environ.update(ENV)  # DBUS_SESSION_BUS_ADDRESS, XDG_RUNTIME_DIR, WAYLAND_DISPLAY, ...

import gi  # noqa: E402

gi.require_version("Gst", "1.0")
from gi.repository import Gio, GLib, Gst  # noqa: E402

Gst.init(None)
PORTAL = "org.freedesktop.portal.Desktop"
OBJ = "/org/freedesktop/portal/desktop"
SC = "org.freedesktop.portal.ScreenCast"
want_w, want_h = (int(x) for x in ENV.get("GLASSCAST_TESTBED_MODE", "1280x720").split("x"))
passed, failed = 0, 0


def check(ok, what):
    global passed, failed
    print(("  ok   " if ok else "  FAIL ") + what, flush=True)
    if ok:
        passed += 1
    else:
        failed += 1
    return ok


try:
    bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
except GLib.Error as e:  # e.g. root on a bus started with TESTBED_ALLOW_ROOT=0
    check(False, f"connect to {os.environ.get('DBUS_SESSION_BUS_ADDRESS')} as uid {os.geteuid()}: {e.message}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1)
sender = bus.get_unique_name()[1:].replace(".", "_")
loop = GLib.MainLoop()


def request(method, params, options_index, timeout=20):
    """Call a portal method that answers through a Request object; return (response, results)."""
    token = "gc" + uuid.uuid4().hex[:12]
    path = f"/org/freedesktop/portal/desktop/request/{sender}/{token}"
    params[options_index]["handle_token"] = GLib.Variant("s", token)
    out = {}

    def on_response(_conn, _sender, _path, _iface, _signal, value):
        out["r"] = value.unpack()
        loop.quit()

    sub = bus.signal_subscribe(PORTAL, "org.freedesktop.portal.Request", "Response", path, None,
                               Gio.DBusSignalFlags.NONE, on_response)
    sig = {"CreateSession": "(a{sv})", "SelectSources": "(oa{sv})", "Start": "(osa{sv})"}[method]
    bus.call_sync(PORTAL, OBJ, SC, method, GLib.Variant(sig, tuple(params)), GLib.VariantType("(o)"),
                  Gio.DBusCallFlags.NONE, -1, None)
    timed_out = []
    tid = GLib.timeout_add_seconds(timeout, lambda: (timed_out.append(1), loop.quit()) and False)
    loop.run()
    if not timed_out:
        GLib.source_remove(tid)
    bus.signal_unsubscribe(sub)
    if "r" not in out:
        raise TimeoutError(f"{method}: no Response within {timeout}s")
    return out["r"]


def pull_frames(fd, node, n, png=None):
    """pipewiresrc fd=FD path=NODE ! videoconvert ! appsink; returns (frames, caps string, first, elapsed)."""
    desc = (f"pipewiresrc fd={fd} path={node} do-timestamp=true ! videoconvert ! video/x-raw,format=RGB "
            f"! appsink name=sink emit-signals=false sync=false max-buffers=2 drop=false")
    pipe = Gst.parse_launch(desc)
    sink = pipe.get_by_name("sink")
    t0 = time.monotonic()
    pipe.set_state(Gst.State.PLAYING)
    frames, caps, first, last = 0, None, None, None
    deadline = t0 + 15
    while frames < n and time.monotonic() < deadline:
        sample = sink.emit("try-pull-sample", int(0.5 * Gst.SECOND))
        if sample is None:
            if sink.get_property("eos"):
                break
            continue
        frames += 1
        if first is None:
            first = time.monotonic() - t0
            t_first = time.monotonic()
        caps = sample.get_caps().to_string()
        last = sample
    elapsed = time.monotonic() - t0
    fps = (frames - 1) / (time.monotonic() - t_first) if frames > 1 else 0.0
    pipe.set_state(Gst.State.NULL)
    if png and last is not None:
        s = last.get_caps().get_structure(0)
        w, h = s.get_value("width"), s.get_value("height")
        ok, info = last.get_buffer().map(Gst.MapFlags.READ)
        data = bytes(info.data)
        last.get_buffer().unmap(info)
        write_png(png, w, h, data)
    return frames, caps, first, elapsed, fps


def write_png(path, w, h, rgb):
    import struct
    import zlib
    stride = (w * 3 + 3) & ~3  # GStreamer RGB rows are 4-byte aligned
    raw = b"".join(b"\0" + rgb[y * stride:y * stride + w * 3] for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def xdpw_log_lines():
    try:
        with open(os.path.join(TB, "logs", "xdpw.log"), errors="replace") as f:
            return f.read().splitlines()
    except OSError:
        return []


def open_remote(session):
    """OpenPipeWireRemote -> a PipeWire socket fd (ours to close)."""
    reply, fdlist = bus.call_with_unix_fd_list_sync(PORTAL, OBJ, SC, "OpenPipeWireRemote",
                                                    GLib.Variant("(oa{sv})", (session, {})),
                                                    GLib.VariantType("(h)"), Gio.DBusCallFlags.NONE, -1, None, None)
    return fdlist.get(reply.unpack()[0])


def one_run(label, restore_token=None, png=None, persist_mode=2, expect_restore=None, gst_launch=False):
    """One CreateSession..Close cycle; returns the restore_token the portal handed back (or None).
    expect_restore: True/False = check that xdpw did / did not get restore data for restore_token."""
    print(f"== {label} (uid {os.geteuid()}){' restore_token=' + restore_token if restore_token else ''}",
          flush=True)
    t0 = time.monotonic()
    log_mark = len(xdpw_log_lines())
    props = bus.call_sync(PORTAL, OBJ, "org.freedesktop.DBus.Properties", "GetAll", GLib.Variant("(s)", (SC,)),
                          None, Gio.DBusCallFlags.NONE, -1, None).unpack()[0]
    cursor_modes = props.get("AvailableCursorModes", 0)
    cursor_mode = 2 if cursor_modes & 2 else 1
    check(props.get("AvailableSourceTypes", 0) & 1, f"portal v{props.get('version')} offers MONITOR "
          f"(source types {props.get('AvailableSourceTypes')}, cursor modes {cursor_modes})")
    resp, res = request("CreateSession", [{"session_handle_token": GLib.Variant("s", "gcs" + uuid.uuid4().hex[:8])}], 0)
    if not check(resp == 0 and "session_handle" in res, f"CreateSession response {resp}"):
        return None
    session = res["session_handle"]
    opts = {"types": GLib.Variant("u", 1), "multiple": GLib.Variant("b", False),
            "cursor_mode": GLib.Variant("u", cursor_mode), "persist_mode": GLib.Variant("u", persist_mode)}
    if restore_token:
        opts["restore_token"] = GLib.Variant("s", restore_token)
    resp, res = request("SelectSources", [session, opts], 1)
    if not check(resp == 0, f"SelectSources(types=MONITOR, cursor_mode={cursor_mode}, persist_mode={persist_mode}) "
                            f"response {resp}"):
        return None
    resp, res = request("Start", [session, "", {}], 2)
    if not check(resp == 0, f"Start response {resp}"):
        return None
    streams = res.get("streams", [])
    new_token = res.get("restore_token")
    print(f"  restore_token={new_token} streams={streams}", flush=True)
    check(len(streams) == 1, "Start returned exactly one stream")
    node, sprops = streams[0]
    size = tuple(sprops.get("size", (0, 0)))
    check(size == (want_w, want_h), f"stream node {node} size {size[0]}x{size[1]} == {want_w}x{want_h}")
    if sprops.get("source_type") != 1:  # xdpw 0.7 sends 1 << MONITOR(=1) == 2 (WINDOW) for a monitor
        print(f"  note: source_type {sprops.get('source_type')} (spec: 1 = MONITOR; xdpw 0.7 reports 2)")
    check(bool(new_token), "Start returned a restore_token")
    if restore_token:
        got = any("restore data available" in line for line in xdpw_log_lines()[log_mark:])
        if expect_restore:
            check(got, "the portal resolved the token: xdpw received restore_data")
            check(new_token == restore_token, "the portal re-saved the selection under the SAME token")
        else:
            check(not got, "an unknown token is ignored: xdpw received no restore_data")
            check(new_token != restore_token, "... and the portal minted a new token")
    fd = open_remote(session)
    check(fd >= 0, f"OpenPipeWireRemote fd {fd}")
    t_start = time.monotonic() - t0
    frames, caps, first, elapsed, fps = pull_frames(fd, node, args.frames, png)
    os.close(fd)
    print(f"  caps: {caps}", flush=True)
    check(frames >= args.frames, f"{frames}/{args.frames} frames in {elapsed:.2f} s "
          f"(first after {first if first is None else round(first, 3)} s, {fps:.1f} fps)")
    check(caps is not None and f"width=(int){want_w}" in caps and f"height=(int){want_h}" in caps,
          "frame caps have the stream's size")
    if gst_launch:  # the literal command line from the testbed notes, on a second OpenPipeWireRemote fd
        fd2 = open_remote(session)
        cmd = ["gst-launch-1.0", "-q", "pipewiresrc", f"fd={fd2}", f"path={node}", f"num-buffers={args.frames}",
               "!", "videoconvert", "!", "fakesink"]
        t1 = time.monotonic()
        try:
            rc = subprocess.run(cmd, pass_fds=(fd2,), timeout=20, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        os.close(fd2)
        check(rc == 0, f"gst-launch-1.0 pipewiresrc fd={fd2} path={node} num-buffers={args.frames} ! videoconvert "
              f"! fakesink -> rc {rc} in {time.monotonic() - t1:.2f} s")
    bus.call_sync(PORTAL, session, "org.freedesktop.portal.Session", "Close", None, None,
                  Gio.DBusCallFlags.NONE, -1, None)
    print(f"  portal handshake {t_start:.2f} s, run {time.monotonic() - t0:.2f} s", flush=True)
    return new_token


t_all = time.monotonic()
try:
    old = None
    if args.token_file and os.path.exists(args.token_file):
        old = open(args.token_file).read().strip() or None
    if old:
        token = one_run("run 1: persist_mode=2, restore token from an earlier process", restore_token=old,
                        png=args.png, expect_restore=True, gst_launch=True)
    else:
        token = one_run("run 1: persist_mode=2, no restore token", png=args.png, gst_launch=True)
    n = 1
    for i in range(args.runs):
        if not check(bool(token), "have a restore_token from the previous run"):
            break
        n += 1
        token = one_run(f"run {n}: persist_mode=2, previous restore token", restore_token=token,
                        expect_restore=True)
    if args.token_file and token:
        with open(args.token_file, "w") as f:
            f.write(token + "\n")
    if not args.quick:
        n += 1
        one_run(f"run {n}: persist_mode=2, unknown restore token", restore_token=str(uuid.uuid4()),
                expect_restore=False)
        n += 1
        token = one_run(f"run {n}: persist_mode=1 (transient), no restore token", persist_mode=1)
        if check(bool(token), "have a transient restore_token"):
            n += 1
            one_run(f"run {n}: persist_mode=1, transient token on the same D-Bus connection",
                    restore_token=token, persist_mode=1, expect_restore=True)
except Exception as e:  # a hang or D-Bus error is a failure, not a crash
    check(False, f"exception: {e!r}")
print(f"total {time.monotonic() - t_all:.2f} s")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
