#!/usr/bin/env python3
"""A stand-in for the twin's API (docs/api.md), for working on the dashboard
without the Rust runtime. Python standard library only; listens on loopback.

    python3 tests/browser/mock_api.py [--port 8765] [--alarm-after 5]
        [--repeat 0] [--speed 1] [--live-max-s 0] [--assets DIR]
        [--tls-cert PEM --tls-key PEM] [--no-history] [--quiet]

Serves crates/api/assets at /, /app.js, /app.css (with the CSP the real twin
sends) and a fake /api/v1: channels h1..h4 of a four-tank plant, a sine-ish
state on /live at 5 Hz, an attack on h2 after --alarm-after seconds that
raises a "cusum" alarm (cleared a while after the attack ends), ack working.
Tokens "viewer", "operator", "admin" have those roles; anything else is 401.
--port 0 picks a free port. The first line on stdout is always
"mock_api listening on http(s)://127.0.0.1:PORT". --live-max-s N closes every
/live stream after N seconds (to exercise the dashboard's reconnect).
/history serves both series (measured, residual) from the plant's start;
--no-history answers it 503, as a twin without a history does.
"""

import argparse
import json
import math
import os
import queue
import random
import re
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ROLES = {"viewer": 1, "operator": 2, "admin": 3}
CHANNELS = [("h1", "cm"), ("h2", "cm"), ("h3", "cm"), ("h4", "cm")]
THRESHOLD = 0.45
NOISE = 0.12
CSP = "default-src 'self'; frame-ancestors 'none'"
ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}


class Plant:
    """Deterministic fake plant and twin; plant time runs with the wall clock."""

    def __init__(self, alarm_after, repeat, speed):
        self.t0 = time.monotonic()
        self.speed = speed
        self.alarm_after = alarm_after
        self.repeat = repeat
        self.attack_len = 10.0
        self.lock = threading.Lock()
        self.alarms = []  # newest last
        self.subscribers = set()
        self.audit = []

    def now(self):
        return (time.monotonic() - self.t0) * self.speed

    def attacks(self, t):
        """Start times of attacks that have begun by t."""
        if t < self.alarm_after:
            return []
        if self.repeat <= 0:
            return [self.alarm_after]
        n = int((t - self.alarm_after) // self.repeat) + 1
        return [self.alarm_after + i * self.repeat for i in range(n)]

    def attack_offset(self, t):
        for a in self.attacks(t):
            if a <= t < a + self.attack_len:
                return min(1.0, (t - a) / 2.0) * 2.2
        return 0.0

    def sample(self, t):
        k = int(round(t * 5))
        channels = []
        for i, (name, unit) in enumerate(CHANNELS):
            base = [12.0, 10.0, 6.0, 5.5][i]
            amp = [1.8, 1.4, 0.9, 0.7][i]
            period = [60.0, 75.0, 45.0, 50.0][i]
            est = base + amp * math.sin(2 * math.pi * t / period + i) + 0.3 * math.sin(2 * math.pi * t / 9.0 + 2 * i)
            noise = random.Random(k * 31 + i).gauss(0.0, NOISE)
            meas = est + noise + (self.attack_offset(t) if name == "h2" else 0.0)
            channels.append({
                "name": name, "unit": unit, "measured": round(meas, 4),
                "estimate": round(est, 4), "residual": round(meas - est, 4),
                "threshold": THRESHOLD,
            })
        return channels

    def state(self, t=None):
        t = self.now() if t is None else t
        with self.lock:
            active = sum(1 for a in self.alarms if a["cleared_at_s"] is None)
        return {"time_s": round(t, 3), "samples": int(t * 100), "active_alarms": active,
                "channels": self.sample(t)}

    def broadcast(self, alarm):
        with self.lock:
            subs = list(self.subscribers)
        for q in subs:
            q.put(dict(alarm))

    def tick(self):
        """Raise and clear alarms as plant time passes (called at 10 Hz)."""
        t = self.now()
        changed = []
        with self.lock:
            for start in self.attacks(t):
                raise_at = start + 1.2
                if t >= raise_at and not any(a["_start"] == start for a in self.alarms):
                    alarm = {"id": len(self.alarms) + 1, "detector": "cusum", "channels": ["h2"],
                             "raised_at_s": round(raise_at, 2), "cleared_at_s": None,
                             "acknowledged": False, "_start": start}
                    self.alarms.append(alarm)
                    changed.append(alarm)
            for a in self.alarms:
                clear_at = a["_start"] + self.attack_len + 2.0
                if a["cleared_at_s"] is None and t >= clear_at:
                    a["cleared_at_s"] = round(clear_at, 2)
                    changed.append(a)
        for a in changed:
            self.broadcast(public(a))

    def ack(self, alarm_id):
        with self.lock:
            for a in self.alarms:
                if a["id"] == alarm_id:
                    a["acknowledged"] = True
                    out = public(a)
                    break
            else:
                return None
        self.broadcast(out)
        return out

    def alarm_list(self):
        with self.lock:
            return [public(a) for a in reversed(self.alarms)]


def public(alarm):
    return {k: v for k, v in alarm.items() if not k.startswith("_")}


class Handler(BaseHTTPRequestHandler):
    server_version = "mock-twin"
    sys_version = ""
    protocol_version = "HTTP/1.0"   # /live ends when the connection closes

    def log_message(self, fmt, *args):
        if not self.server.quiet:
            sys.stderr.write("mock_api: %s %s\n" % (self.address_string(), fmt % args))

    # -- helpers
    def common_headers(self):
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")

    def send_body(self, status, body, ctype, extra=None):
        self.send_response(status)
        self.common_headers()
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status, obj, extra=None):
        self.send_body(status, json.dumps(obj).encode(), "application/json", extra)

    def error(self, status, reason):
        extra = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        self.send_json(status, {"error": reason}, extra)

    def role(self):
        auth = self.headers.get("Authorization", "")
        m = re.fullmatch(r"Bearer (\S+)", auth)
        return ROLES.get(m.group(1)) if m else None

    def authorise(self, need):
        role = self.role()
        if role is None:
            self.error(401, "unauthorized")
            return False
        if role < need:
            self.error(403, "forbidden")
            return False
        return True

    # -- routes
    def do_GET(self):
        url = urlsplit(self.path)
        path = url.path
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        plant = self.server.plant
        if path in ASSETS:
            name, ctype = ASSETS[path]
            try:
                with open(os.path.join(self.server.assets, name), "rb") as f:
                    body = f.read()
            except OSError:
                return self.error(404, "not found")
            return self.send_body(200, body, ctype)
        if path == "/api/v1/health":
            return self.send_json(200, {"status": "ok"})
        if path == "/api/v1/openapi.json":
            return self.send_json(200, {"openapi": "3.0.3", "info": {"title": "mock twin", "version": "0.1.0"},
                                        "paths": {}})
        if not path.startswith("/api/v1/"):
            return self.error(404, "not found")
        need = 3 if path in ("/api/v1/security", "/api/v1/audit") else 1
        if not self.authorise(need):
            return None
        if path == "/api/v1/whoami":
            names = {1: "viewer", 2: "operator", 3: "admin"}
            return self.send_json(200, {"token_id": "mock0000", "role": names[self.role()]})
        if path == "/api/v1/twin":
            return self.send_json(200, {"name": "quadtank", "version": "0.1.0",
                                        "channels": [{"name": n, "unit": u} for n, u in CHANNELS]})
        if path == "/api/v1/state":
            return self.send_json(200, plant.state())
        if path == "/api/v1/alarms":
            return self.send_json(200, {"alarms": plant.alarm_list()})
        if path == "/api/v1/security":
            return self.send_json(200, {"protected": True, "degraded": False, "findings": [
                {"class": "environment", "action": "report", "what": "mock: running without the shield"}]})
        if path == "/api/v1/audit":
            return self.send_json(200, {"events": [{"time_s": plant.now(), "kind": "audit", "what": "mock"}]})
        if path == "/api/v1/metrics":
            st = plant.state()
            lines = ["twinshield_samples_total %d" % st["samples"],
                     "twinshield_active_alarms %d" % st["active_alarms"]]
            lines += ['twinshield_residual{channel="%s"} %f' % (c["name"], c["residual"]) for c in st["channels"]]
            return self.send_body(200, ("\n".join(lines) + "\n").encode(), "text/plain; version=0.0.4")
        if path == "/api/v1/history":
            if self.server.no_history:
                return self.error(503, "unavailable")
            return self.history(q)
        if path == "/api/v1/live":
            return self.live()
        return self.error(404, "not found")

    def history(self, q):
        names = [n for n, _ in CHANNELS]
        try:
            start, end, step = float(q["from"]), float(q["to"]), float(q["step"])
        except (KeyError, ValueError):
            return self.error(400, "bad request")
        if q.get("channel") not in names:
            return self.error(404, "not found")
        if not (start < end and step > 0) or (end - start) / step > 10000:
            return self.error(400, "bad request")
        series = q.get("series", "measured")
        if series not in ("measured", "residual"):
            return self.error(400, "bad request")
        idx = names.index(q["channel"])
        points = []
        # buckets from the plant's start only, as a real history would hold
        t = start + max(0, math.ceil(-start / step)) * step
        while t < end and t <= self.server.plant.now():
            vals = [self.server.plant.sample(t + i * step / 4)[idx][series] for i in range(4)]
            points.append({"time_s": round(t, 3), "min": min(vals), "mean": sum(vals) / 4, "max": max(vals)})
            t += step
        return self.send_json(200, {"channel": q["channel"], "series": series, "step_s": step, "points": points})

    def live(self):
        plant = self.server.plant
        self.send_response(200)
        self.common_headers()
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        if self.command == "HEAD":
            return
        q = queue.Queue()
        with plant.lock:
            plant.subscribers.add(q)
        started = time.monotonic()
        try:
            self.wfile.write(b": twin live stream\nretry: 1000\n\n")
            self.wfile.flush()
            next_t = math.floor(plant.now() * 5) / 5 + 0.2
            while not self.server.stopping.is_set():
                if self.server.live_max_s and time.monotonic() - started > self.server.live_max_s:
                    break
                wait = (next_t - plant.now()) / plant.speed
                try:
                    alarm = q.get(timeout=max(0.0, wait))
                    self.event("alarm", alarm)
                    continue
                except queue.Empty:
                    pass
                self.event("state", plant.state(next_t))
                next_t += 0.2
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        finally:
            with plant.lock:
                plant.subscribers.discard(q)
        self.close_connection = True

    def event(self, kind, obj):
        self.wfile.write(("event: %s\ndata: %s\n\n" % (kind, json.dumps(obj))).encode())
        self.wfile.flush()

    def do_POST(self):
        path = urlsplit(self.path).path
        m = re.fullmatch(r"/api/v1/alarms/([0-9]+)/ack", path)
        if not m:
            return self.error(404 if path.startswith("/api/") else 405, "not found")
        if not self.authorise(2):
            return None
        length = int(self.headers.get("Content-Length") or 0)
        if length > 4096:
            return self.error(413, "payload too large")
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            return self.error(415, "unsupported media type")
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except ValueError:
            return self.error(400, "bad request")
        if body != {}:
            return self.error(400, "bad request")
        alarm = self.server.plant.ack(int(m.group(1)))
        if alarm is None:
            return self.error(404, "not found")
        return self.send_json(200, alarm)

    do_HEAD = do_GET

    def do_PUT(self):
        self.error(405, "method not allowed")

    do_DELETE = do_PATCH = do_PUT


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--alarm-after", type=float, default=5.0, help="plant seconds before the attack (default 5)")
    ap.add_argument("--repeat", type=float, default=0.0, help="repeat the attack every N s (0: once)")
    ap.add_argument("--speed", type=float, default=1.0, help="plant seconds per wall second")
    ap.add_argument("--live-max-s", type=float, default=0.0, help="close /live streams after N s (0: never)")
    ap.add_argument("--assets", default=os.path.join(here, "..", "..", "crates", "api", "assets"))
    ap.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (and --tls-key)")
    ap.add_argument("--tls-key")
    ap.add_argument("--no-history", action="store_true", help="answer /api/v1/history with 503")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    scheme = "http"
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    server.plant = Plant(args.alarm_after, args.repeat, args.speed)
    server.assets = os.path.abspath(args.assets)
    server.quiet = args.quiet
    server.live_max_s = args.live_max_s
    server.no_history = args.no_history
    server.stopping = threading.Event()

    def ticker():
        while not server.stopping.wait(0.1):
            server.plant.tick()

    threading.Thread(target=ticker, daemon=True).start()
    print("mock_api listening on %s://127.0.0.1:%d" % (scheme, server.server_address[1]), flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.stopping.set()
        server.server_close()


if __name__ == "__main__":
    main()
