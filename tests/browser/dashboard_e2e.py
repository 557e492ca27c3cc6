#!/usr/bin/env python3
"""End-to-end test of the twinshield dashboard in headless Chromium.

Interface (stable; the Rust e2e test and .ci/run rely on it):

    python3 tests/browser/dashboard_e2e.py --url BASE (--token TOKEN |
        --token-file FILE) --screenshot OUT.png [--attack-wait SECONDS]
        [--ready-file FILE] [--chromium PATH] [--chromedriver PATH]
        [--fragment-login] [--no-alarm] [--history-first T
        [--history-points N] [--history-span S]] [--verbose]

  --url          the dashboard's address, e.g. https://127.0.0.1:8443/
                 (self-signed certificates are accepted).
  --token        an operator or admin token (it must be allowed to
                 acknowledge). --token-file reads it from a file instead
                 (keeps it out of the process list); the environment
                 variable DASHBOARD_E2E_TOKEN is used if neither is given.
  --attack-wait  how long to wait for an unacknowledged alarm to appear in
                 the alarm list after the live checks passed (default 60).
  --ready-file   created (empty) once the page is logged in and its charts
                 update: the caller may start the attack then. "READY" is
                 also printed on stderr at that point.
  --fragment-login  log in by opening URL#token=TOKEN (what `twinshield
                 demo` opens on a desktop) instead of typing into the form;
                 the token must then be gone from the address bar.
  --no-alarm     stop after the live checks (no alarm is waited for).
  --history-first T  first wait (at most T + 60 s) until the twin's
                 /api/v1/state reports time_s >= T (the demo's plant time),
                 so its history holds T seconds; then, right after login,
                 the first time every chart has drawn points, each must
                 already show the history: at least --history-points
                 points (default 100) spanning at least --history-span
                 seconds (default 30), read from the canvases' data-points
                 and data-span. Live data alone would show a point or two.
  --screenshot   where to write the PNG (written on success and, when the
                 browser still answers, on failure).
  --chromium / --chromedriver  default /usr/bin/chromium and chromedriver
                 from PATH (Debian packages chromium, chromium-driver), or
                 $CHROMIUM / $CHROMEDRIVER.

Steps: open the page, type the token into #token, click #login-button, wait
for the charts (canvas[data-channel] with data-points > 0; with
--history-first, the first such drawing must hold the history), check that
#last-update changes within 2 s, twice; wait for an .alarm[data-id] that is
not .acknowledged and has a button .ack; check an alarm marker is drawn
(a canvas with data-markers > 0); click .ack; wait until the item has the
class .acknowledged and no .ack button; check the browser console has no
Content-Security-Policy violation and no uncaught script error; save the
screenshot.

Exit status 0 when all passed, 1 on any failure, 2 on bad arguments. The
last line on stdout is "dashboard_e2e: ok ..." or "dashboard_e2e: FAIL: why".
Python standard library only: WebDriver over HTTP to Debian's chromedriver
(no selenium). Every wait is bounded; chromedriver and the browser it
started are always ended, by process group, before exit.
"""

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import ssl
import tempfile
import time
import urllib.error
import urllib.request

ELEMENT_KEY = "element-6066-11e4-a52e-4f735466cecf"
VERBOSE = False

# What the page shows, read through the hooks documented in app.js.
SNAPSHOT_JS = r"""
const q = (s) => document.querySelector(s);
const shown = (el) => !!el && !el.hidden && el.getClientRects().length > 0;
const text = (s) => { const el = q(s); return el ? el.textContent.trim() : null; };
return {
  href: location.href,
  login: shown(q('#token')),
  dashboard: shown(q('#charts')),
  loginError: shown(q('#login-error')) ? text('#login-error') : '',
  message: shown(q('#message')) ? text('#message-text') : '',
  status: text('#status'),
  lastUpdate: text('#last-update'),
  history: (q('#charts') || {dataset: {}}).dataset.history || '',
  canvases: [...document.querySelectorAll('#charts canvas[data-channel]')].map((c) => ({
    channel: c.dataset.channel, kind: c.dataset.kind || '',
    points: Number(c.dataset.points || 0), markers: Number(c.dataset.markers || 0),
    span: Number(c.dataset.span || 0),
    width: c.width, height: c.height })),
  alarms: [...document.querySelectorAll('#alarms .alarm[data-id]')].map((li) => ({
    id: li.dataset.id, acknowledged: li.classList.contains('acknowledged'),
    ack: !!li.querySelector('button.ack'), text: li.textContent.replace(/\s+/g, ' ').trim() })),
  height: Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0),
};
"""


class Fail(Exception):
    """A check failed; the message is the one line reported."""


class WebDriverError(Exception):
    def __init__(self, error, message):
        super().__init__("%s: %s" % (error, message))
        self.error = error


def log(msg):
    if VERBOSE:
        print("dashboard_e2e: " + msg, file=sys.stderr, flush=True)


class WebDriver:
    """The few W3C WebDriver commands this test needs."""

    def __init__(self, base):
        self.base = base
        self.sid = None
        # never through a proxy: chromedriver is on loopback
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(self, method, path, body=None, timeout=30):
        data = None
        if method == "POST":
            data = json.dumps({} if body is None else body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json; charset=utf-8"})
        try:
            with self.opener.open(req, timeout=timeout) as res:
                payload = json.loads(res.read() or b"null")
        except urllib.error.HTTPError as e:
            try:
                value = json.loads(e.read() or b"null").get("value") or {}
            except ValueError:
                value = {}
            raise WebDriverError(value.get("error", "http %d" % e.code),
                                 (value.get("message") or "").split("\n")[0]) from None
        return payload.get("value") if isinstance(payload, dict) else None

    def s(self, method, path, body=None, timeout=30):
        return self.call(method, "/session/%s%s" % (self.sid, path), body, timeout)

    def start(self, chromium, args):
        caps = {"capabilities": {"alwaysMatch": {
            "acceptInsecureCerts": True,
            "pageLoadStrategy": "normal",
            "timeouts": {"pageLoad": 30000, "script": 10000, "implicit": 0},
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}}
        value = self.call("POST", "/session", caps, timeout=60)
        self.sid = value["sessionId"]

    def quit(self):
        if self.sid:
            try:
                self.s("DELETE", "", timeout=15)
            except Exception:  # noqa: BLE001 - best effort, the process group is killed next
                pass
            self.sid = None

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css):
        value = self.s("POST", "/element", {"using": "css selector", "value": css})
        if not isinstance(value, dict) or ELEMENT_KEY not in value:
            raise WebDriverError("no such element", "%s -> %r" % (css, value))
        return value[ELEMENT_KEY]

    def screenshot(self, path):
        png = base64.b64decode(self.s("GET", "/screenshot", timeout=30))
        with open(path, "wb") as f:
            f.write(png)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, timeout, probe, interval=0.1):
    """Poll probe() until it returns something truthy, at most timeout s."""
    end = time.monotonic() + timeout
    while True:
        try:
            value = probe()
        except WebDriverError as e:
            if e.error in ("invalid session id", "no such window", "session not created"):
                raise Fail("the browser went away while waiting for %s" % what) from None
            value = None
        if value:
            return value
        if time.monotonic() >= end:
            raise Fail("%s (waited %g s)" % (what, timeout))
        time.sleep(interval)


def read_token(args):
    if args.token:
        return args.token.strip()
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            return f.read().strip()
    return os.environ.get("DASHBOARD_E2E_TOKEN", "").strip()


def check_console(wd):
    """Fail on CSP violations and uncaught script errors in the browser log."""
    try:
        entries = wd.s("POST", "/se/log", {"type": "browser"}) or []
    except WebDriverError:
        log("browser log not available from this chromedriver; console not checked")
        return
    for e in entries:
        msg = str(e.get("message", ""))
        if "Content Security Policy" in msg or "Uncaught" in msg:
            raise Fail("browser console: " + " ".join(msg.split())[:300])


def twin_time(url, token):
    """The twin's latest time_s from /api/v1/state (self-signed TLS accepted)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))
    req = urllib.request.Request(url.rstrip("/") + "/api/v1/state",
                                 headers={"Authorization": "Bearer " + token, "Accept": "application/json"})
    with opener.open(req, timeout=5) as res:
        return float(json.loads(res.read())["time_s"])


def wait_for_history(args, token):
    """Wait until the twin has run --history-first seconds of its time."""
    last = [None]

    def ran_long_enough():
        try:
            last[0] = twin_time(args.url, token)
        except (OSError, ValueError, KeyError, TypeError) as e:
            last[0] = "error: %s" % e
            return False
        return last[0] >= args.history_first
    try:
        wait_for("", args.history_first + 60, ran_long_enough, interval=0.5)
    except Fail:
        raise Fail("the twin did not reach %g s of its time within %g s (last /state time_s: %s)"
                   % (args.history_first, args.history_first + 60, last[0])) from None
    log("the twin is at %.1f s: its history is long enough" % last[0])


def check_history_first(snap, args):
    """The first drawing with points on every chart holds the history."""
    def all_drawn():
        s = snap()
        c = s["canvases"]
        return c and all(x["points"] > 0 for x in c) and s
    s = wait_for("the charts were not drawn after login (data-history %r)" % snap()["history"], 20, all_drawn,
                 interval=0.02)
    short = ["%s/%s: %d points over %.1f s" % (c["channel"], c["kind"], c["points"], c["span"])
             for c in s["canvases"]
             if c["points"] < args.history_points or c["span"] < args.history_span]
    if short:
        raise Fail("charts not filled from the history on first paint (data-history %r; want >= %d points "
                   "over >= %g s): %s" % (s["history"], args.history_points, args.history_span, "; ".join(short)))
    log("first paint: %s (data-history %s)" % (", ".join(
        "%s/%s %d pts %.0f s" % (c["channel"], c["kind"], c["points"], c["span"]) for c in s["canvases"]),
        s["history"]))
    return s


def run(wd, args, token):
    url = args.url + ("#token=" + token if args.fragment_login else "")
    try:
        wd.s("POST", "/url", {"url": url}, timeout=45)
    except WebDriverError as e:
        raise Fail("cannot load %s: %s" % (args.url, str(e).split(": ")[-1])) from None
    snap = lambda: wd.js(SNAPSHOT_JS)  # noqa: E731
    s = snap()
    if not s["href"].startswith(("http://", "https://")):
        raise Fail("cannot load %s (browser shows %s)" % (args.url, s["href"]))
    if not args.fragment_login:
        wait_for("the login form (#token) did not appear at %s" % args.url, 20, lambda: snap()["login"])
        log("logging in")
        wd.s("POST", "/element/%s/value" % wd.find("#token"), {"text": token})
        wd.s("POST", "/element/%s/click" % wd.find("#login-button"))

    def logged_in():
        s = snap()
        if s["loginError"]:
            raise Fail("login refused: " + s["loginError"])
        return s["dashboard"]
    wait_for("the dashboard did not open after login", 20, logged_in)
    if args.fragment_login and "token" in snap()["href"]:
        raise Fail("the token stayed in the address bar after a #token= login")
    first = check_history_first(snap, args) if args.history_first is not None else None

    def charts_drawn():
        s = snap()
        c = s["canvases"]
        return c and all(x["points"] > 0 for x in c) and s["lastUpdate"] not in (None, "", "–") and s
    s = wait_for("the charts were not drawn (no canvas[data-channel] with data-points > 0)", 20, charts_drawn)
    channels = sorted({c["channel"] for c in s["canvases"]})
    log("charts drawn for %s" % ", ".join(channels))

    for i in (1, 2):
        before = snap()["lastUpdate"]
        t0 = time.monotonic()
        after = wait_for("#last-update did not change within 2 s (stuck at %r, status %r)"
                         % (before, snap()["status"]), 2.0,
                         lambda: (lambda v: v if v != before else None)(snap()["lastUpdate"]), interval=0.05)
        log("live check %d: #last-update %s -> %s in %.2f s" % (i, before, after, time.monotonic() - t0))

    if args.ready_file:
        with open(args.ready_file, "w", encoding="utf-8"):
            pass
    print("READY", file=sys.stderr, flush=True)
    if args.no_alarm:
        check_console(wd)
        if first is not None:
            return "%d channels, live, opened with %d-%d points of history" % (
                len(channels), min(c["points"] for c in first["canvases"]),
                max(c["points"] for c in first["canvases"]))
        return "%d channels, live" % len(channels)

    log("waiting up to %g s for an alarm" % args.attack_wait)
    seen_without_button = {}

    def alarm_to_ack():
        s = snap()
        if s["login"]:
            raise Fail("the page went back to the login form: " + (s["loginError"] or "no reason shown"))
        for a in s["alarms"]:
            if a["acknowledged"]:
                continue
            if a["ack"]:
                return a
            first = seen_without_button.setdefault(a["id"], time.monotonic())
            if time.monotonic() - first > 3:
                raise Fail("alarm #%s has no Acknowledge button (does the token have the operator role?) %s"
                           % (a["id"], s["message"]))
        return None
    alarm = wait_for("no unacknowledged alarm appeared in #alarms", args.attack_wait, alarm_to_ack, interval=0.2)
    log("alarm appeared: " + alarm["text"])

    wait_for("no alarm marker drawn on any chart (canvas data-markers)", 3,
             lambda: any(c["markers"] > 0 for c in snap()["canvases"]))

    aid = alarm["id"]
    wd.s("POST", "/element/%s/click" % wd.find('#alarms .alarm[data-id="%s"] button.ack' % aid))

    def acknowledged():
        s = snap()
        if s["message"]:
            raise Fail("acknowledge failed: " + s["message"])
        for a in s["alarms"]:
            if a["id"] == aid:
                return a["acknowledged"] and not a["ack"]
        raise Fail("alarm #%s vanished from the list" % aid)
    wait_for("alarm #%s was not shown as acknowledged" % aid, 5, acknowledged)
    log("alarm #%s acknowledged" % aid)

    check_console(wd)
    return "%d channels, alarm #%s acknowledged" % (len(channels), aid)


def save_screenshot(wd, path):
    """Fit the window to the page, then capture it."""
    try:
        h = int(wd.js(SNAPSHOT_JS)["height"])
        if h > 900:
            wd.s("POST", "/window/rect", {"width": 1440, "height": min(h + 40, 3000)})
            time.sleep(0.6)
    except (WebDriverError, KeyError, TypeError, ValueError):
        pass
    wd.screenshot(path)


def main():
    global VERBOSE
    ap = argparse.ArgumentParser(description="End-to-end test of the twinshield dashboard in headless Chromium.")
    ap.add_argument("--url", required=True)
    ap.add_argument("--token")
    ap.add_argument("--token-file")
    ap.add_argument("--attack-wait", type=float, default=60.0)
    ap.add_argument("--screenshot", required=True)
    ap.add_argument("--ready-file")
    ap.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    ap.add_argument("--chromedriver", default=os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
                    or "/usr/bin/chromedriver")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--fragment-login", action="store_true",
                    help="log in through URL#token=... (what `twinshield demo` opens) instead of the form")
    ap.add_argument("--no-alarm", action="store_true",
                    help="stop after the live checks (no alarm expected)")
    ap.add_argument("--history-first", type=float, metavar="T",
                    help="wait for T s of twin time, then require the charts' first paint to show the history")
    ap.add_argument("--history-points", type=int, default=100, metavar="N")
    ap.add_argument("--history-span", type=float, default=30.0, metavar="S")
    args = ap.parse_args()
    if args.history_first is not None and not (args.history_first > 0 and args.history_points > 0
                                               and args.history_span >= 0):
        ap.error("--history-first must be positive, --history-points positive, --history-span >= 0")
    VERBOSE = args.verbose

    def on_signal(signum, _frame):
        raise Fail("interrupted by signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    tmp = tempfile.mkdtemp(prefix="dashboard_e2e.")
    proc = None
    wd = None
    rc, line = 1, "FAIL: unknown"
    try:
        token = read_token(args)
        if not token:
            raise Fail("no token given (--token, --token-file or DASHBOARD_E2E_TOKEN)")
        for exe in (args.chromium, args.chromedriver):
            if not (exe and os.access(exe, os.X_OK)):
                raise Fail("%s not found: install Debian's chromium and chromium-driver" % exe)
        if args.history_first is not None:
            wait_for_history(args, token)
        port = free_port()
        with open(os.path.join(tmp, "chromedriver.log"), "wb") as dlog:
            proc = subprocess.Popen([args.chromedriver, "--port=%d" % port], stdin=subprocess.DEVNULL,
                                    stdout=dlog, stderr=subprocess.STDOUT, start_new_session=True)
        wd = WebDriver("http://127.0.0.1:%d" % port)

        def driver_ready():
            if proc.poll() is not None:
                raise Fail("chromedriver exited with status %d" % proc.returncode)
            try:
                return wd.call("GET", "/status", timeout=2).get("ready")
            except (OSError, WebDriverError, AttributeError):
                return False
        wait_for("chromedriver did not become ready", 20, driver_ready, interval=0.2)

        chrome_args = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-quic", "--no-first-run", "--no-default-browser-check",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--disable-default-apps", "--no-proxy-server",
            "--ignore-certificate-errors", "--force-device-scale-factor=1", "--hide-scrollbars",
            "--window-size=1440,900", "--user-data-dir=" + os.path.join(tmp, "profile"),
        ]
        try:
            wd.start(args.chromium, chrome_args)
        except WebDriverError as e:
            raise Fail("chromium did not start: %s" % e) from None
        log("browser started")
        summary = run(wd, args, token)
        save_screenshot(wd, args.screenshot)
        rc, line = 0, "ok: %s; screenshot %s" % (summary, args.screenshot)
    except Fail as e:
        line = "FAIL: %s" % e
    except WebDriverError as e:
        line = "FAIL: webdriver: %s" % e
    except Exception as e:  # noqa: BLE001 - one clear line, whatever went wrong
        line = "FAIL: %s: %s" % (type(e).__name__, e)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if rc != 0 and wd is not None and wd.sid:
            try:
                save_screenshot(wd, args.screenshot)
                line += " (screenshot %s)" % args.screenshot
            except Exception:  # noqa: BLE001
                pass
        if wd is not None:
            wd.quit()
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            # any browser process left in chromedriver's process group
            end = time.monotonic() + 5
            while time.monotonic() < end:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    break
                time.sleep(0.1)
        shutil.rmtree(tmp, ignore_errors=True)
    print("dashboard_e2e: " + line, flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
