# SPDX-License-Identifier: Apache-2.0
"""A small headless Chromium driver for the end-to-end dashboard test, standard library only.

Chromium is started with --remote-debugging-pipe: it reads DevTools protocol commands from
fd 3 and writes replies and events to fd 4, each a JSON message ended by a NUL byte. No
websocket, no npm, no chromedriver. One page target is attached in flat mode
(Target.attachToTarget flatten=true), so page commands carry its sessionId.

    b = Browser(out_dir)            # starts chromium (own profile in out_dir, 1920x1080)
    b.goto("http://127.0.0.1:8080/")
    b.wait("document.querySelector('#login') && !document.querySelector('#login').hidden")
    b.eval("1 + 1")                 # -> 2 (returnByValue)
    b.screenshot("overview.png")
    b.errors                        # console errors, uncaught exceptions, failed loads
    b.close()                       # kills chromium and its whole process group

The dashboard scenarios use Dashboard, a Browser that knows the dashboard's login form and
navigation, as a context manager that leaves a failure screenshot and the page text behind
when the scenario raises (and closes the browser in any case):

    with Dashboard(out_dir) as b:
        b.open("http://127.0.0.1:8080")   # the page, and waits for the dashboard script
        b.login("otto", "operator-pass-1")
        b.nav("incidents")
        check(b.eval("..."), "what went wrong")
"""
import base64
import fcntl
import json
import os
import signal
import subprocess
import threading
import time

T0 = time.time()


def log(*a):
    """Print a line with the seconds since the scenario started (this module's import)."""
    print("[%5.1fs]" % (time.time() - T0), *a, flush=True)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


class BrowserError(Exception):
    pass


class Browser:
    def __init__(self, out_dir, width=1920, height=1080, binary=None):
        self.out_dir = out_dir
        self.errors = []
        self.console = []
        self._id = 0
        self._replies = {}
        self._cv = threading.Condition()
        self._closed = False
        binary = binary or os.environ.get("CHROMIUM", "chromium")
        profile = os.path.join(out_dir, "chromium-profile")
        os.makedirs(profile, exist_ok=True)
        # two pipes: we write commands into cmd_w (chromium's fd 3), read from ev_r (its fd 4)
        cmd_r, self._cmd_w = os.pipe()
        self._ev_r, ev_w = os.pipe()
        # the child's ends go above fd 9 so that moving them to 3 and 4 cannot clobber them
        for_child = []
        for fd in (cmd_r, ev_w):
            high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
            os.close(fd)
            for_child.append(high)
        cmd_r, ev_w = for_child
        args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--no-default-browser-check",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-extensions", "--disable-dev-shm-usage",
                "--disable-features=Translate,MediaRouter,OptimizationHints",
                "--password-store=basic", "--use-mock-keychain", "--mute-audio",
                "--hide-scrollbars", "--user-data-dir=" + profile,
                "--window-size=%d,%d" % (width, height), "--remote-debugging-pipe",
                "about:blank"]
        # bash moves our pipe ends to fds 3 and 4 and execs chromium in a new session
        # (its own process group, so close() can kill every child it spawned)
        sh = 'exec "$@" 3<&%d 4>&%d %d<&- %d>&-' % (cmd_r, ev_w, cmd_r, ev_w)
        self._log = open(os.path.join(out_dir, "chromium.log"), "wb")
        self.proc = subprocess.Popen(["/bin/bash", "-c", sh, "sh"] + args, pass_fds=(cmd_r, ev_w),
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        os.close(cmd_r)
        os.close(ev_w)
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        self.events = []  # (method, params) of the page session we care about
        try:
            t = self.send("Target.createTarget", {"url": "about:blank"}, timeout=30)
            self.session = self.send("Target.attachToTarget",
                                     {"targetId": t["targetId"], "flatten": True})["sessionId"]
            for dom in ("Page.enable", "Runtime.enable", "Log.enable", "Network.enable"):
                self.page(dom)
            self.page("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        except Exception:
            self.close()
            raise

    # ---- protocol ----
    def _read_loop(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self._ev_r, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                self._dispatch(msg)
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def _dispatch(self, msg):
        if "id" in msg:
            with self._cv:
                self._replies[msg["id"]] = msg
                self._cv.notify_all()
            return
        m, p = msg.get("method"), msg.get("params", {})
        if m == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            self.console.append((p.get("type"), text))
            if p.get("type") in ("error", "assert"):
                self.errors.append("console.%s: %s" % (p.get("type"), text))
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            exc = d.get("exception", {}).get("description") or d.get("text")
            self.errors.append("exception: %s (%s:%s)" % (exc, d.get("url", ""), d.get("lineNumber")))
        elif m == "Log.entryAdded":
            e = p.get("entry", {})
            self.console.append((e.get("level"), e.get("text")))
            if e.get("level") == "error":
                self.errors.append("log[%s]: %s %s" % (e.get("source"), e.get("text"), e.get("url", "")))
        elif m == "Network.loadingFailed" and not p.get("canceled"):
            self.errors.append("network: %s %s" % (p.get("errorText"), p.get("type")))

    def send(self, method, params=None, session=None, timeout=15):
        with self._cv:
            self._id += 1
            mid = self._id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        try:
            os.write(self._cmd_w, data)
        except OSError as e:
            raise BrowserError("chromium is gone (%s) sending %s" % (e, method))
        end = time.time() + timeout
        with self._cv:
            while mid not in self._replies:
                left = end - time.time()
                if left <= 0:
                    raise BrowserError("no reply to %s within %ss" % (method, timeout))
                if self._closed:
                    raise BrowserError("chromium closed the pipe during %s" % method)
                self._cv.wait(left)
            r = self._replies.pop(mid)
        if "error" in r:
            raise BrowserError("%s: %s" % (method, r["error"]))
        return r.get("result", {})

    def page(self, method, params=None, timeout=15):
        return self.send(method, params, session=self.session, timeout=timeout)

    # ---- page helpers ----
    def goto(self, url):
        self.page("Page.navigate", {"url": url})

    def eval(self, expr, timeout=15):
        r = self.page("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                           "awaitPromise": True}, timeout=timeout)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise BrowserError("eval %r: %s" % (expr[:80], d.get("exception", {}).get("description", d.get("text"))))
        return r.get("result", {}).get("value")

    def wait(self, expr, timeout=10, what=None, interval=0.05):
        """Poll a JS expression until it is truthy; return its value and the time it took."""
        start = time.time()
        last = None
        # an element found counts as true (returnByValue would give an empty, falsy object)
        js = "(v => v instanceof Node ? true : v)(%s)" % expr
        while time.time() - start < timeout:
            try:
                v = self.eval(js)
            except BrowserError as e:
                v, last = None, e
            if v:
                return v
            time.sleep(interval)
        raise BrowserError("timed out after %ss waiting for %s%s" %
                           (timeout, what or expr, " (%s)" % last if last else ""))

    def type(self, selector, text):
        """Set an input's value as a user would (focus, value, input event)."""
        self.eval("(() => { const e = document.querySelector(%s); e.focus(); e.value = %s;"
                  " e.dispatchEvent(new Event('input', {bubbles: true})); return true; })()"
                  % (json.dumps(selector), json.dumps(text)))

    def click(self, selector):
        """A real mouse click in the middle of the element (so hidden elements cannot be hit)."""
        box = self.eval("(() => { const e = document.querySelector(%s); if (!e) return null;"
                        " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
                        " return [r.x + r.width / 2, r.y + r.height / 2, r.width, r.height]; })()"
                        % json.dumps(selector))
        if not box or box[2] == 0 or box[3] == 0:
            raise BrowserError("cannot click %s: not visible" % selector)
        for t in ("mousePressed", "mouseReleased"):
            self.page("Input.dispatchMouseEvent", {"type": t, "x": box[0], "y": box[1],
                                                   "button": "left", "clickCount": 1})

    def select(self, selector, value):
        self.eval("(() => { const e = document.querySelector(%s); e.value = %s;"
                  " e.dispatchEvent(new Event('change', {bubbles: true})); return true; })()"
                  % (json.dumps(selector), json.dumps(value)))

    def screenshot(self, name):
        data = self.page("Page.captureScreenshot", {"format": "png"}, timeout=30)["data"]
        path = os.path.join(self.out_dir, name)
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def close(self):
        try:
            if self.proc.poll() is None:
                try:
                    self.send("Browser.close", timeout=3)
                except BrowserError:
                    pass
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            # chromium's helpers (zygote, renderers, gpu) share its process group
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            for fd in (self._cmd_w, self._ev_r):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._log.close()


class Dashboard(Browser):
    """A Browser on the Watchpost dashboard (dashboards/)."""

    def open(self, base):
        """Load base + "/" and wait for the dashboard script to be ready."""
        self.goto(base + "/")
        self.wait("window.wpDash && window.wpDash.ready", what="the dashboard script")

    def login(self, user, password):
        """Log in through the login form; returns once the app is shown."""
        self.wait("!document.querySelector('#login').hidden", what="the login form")
        self.type("#login-user", user)
        self.type("#login-password", password)
        self.click("#login-submit")
        self.wait("!document.querySelector('#app').hidden", what="the app after login as " + user)

    def nav(self, page):
        """Click the page's link in the navigation and wait until it is shown and loaded."""
        self.click("nav a[data-page=%s]" % page)
        self.wait("document.querySelector('#page').dataset.page === %s &&"
                  " !document.querySelector('#page-loading')" % json.dumps(page),
                  what="the %s page" % page)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is not None:
                try:
                    self.screenshot("failure.png")
                    log("page text:", self.eval("document.body.innerText")[:2000])
                except Exception as e:
                    log("no failure screenshot:", e)
                log("browser errors:", self.errors)
        finally:
            self.close()
        return False
