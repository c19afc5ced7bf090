#!/usr/bin/env python3
"""A Jenkins stand-in for deploykit's tests: the documented remote API, strictly.

It speaks only the parts of Jenkins that stomp-jenkins uses, and the way Jenkins (core 2.4xx, git
plugin 5.x, Build Authorization Token Root plugin 1.x) answers them:

  GET  /crumbIssuer/api/json          crumb bound to user + JSESSIONID.<node> cookie + client IP;
                                      404 with --no-crumbs (CSRF protection off)
  POST /job/A/job/B/build             201 + Location <base>/queue/item/N/; parameterized jobs take
                                      json={"parameter":[{"name","value"}]} ("Nothing is submitted"
                                      400 without); GET = 405 unless token/API-token authorised
  POST /job/.../buildWithParameters   form fields; undefined names dropped, defaults filled; a job
                                      without parameters = 500 "This build is not parameterized!"
       token=, delay=Nsec, cause=     the job's "Trigger builds remotely" token (wrong = 403),
                                      quiet period override, RemoteCause note (only with a token)
  GET  /queue/item/N/api/json         WaitingItem (why "In the quiet period. Expires in …") →
                                      BuildableItem → LeftItem with executable{number,url}
  GET  /job/.../api/json              job (builds, parameter definitions) or folder (jobs)
  GET|POST /buildByToken/build?job=a/b/NAME&token=   and  /buildByToken/buildWithParameters:
                                      201 + Location, 303 when already queued, 404 for unknown
                                      jobs or jobs without a token, 400 for the wrong kind
  GET|POST /git/notifyCommit?url=&branches=&sha1=&token=
                                      "Scheduled polling of X" / "Scheduled X" / "No git jobs using
                                      repository: …"; token required by default (401 without,
                                      403 wrong); Triggered: headers
  every response carries X-Jenkins.

Authentication is HTTP Basic user:API-token (or user:password from the users file). Bad
credentials are 401; with --anonymous-forbidden anonymous requests get 403 except on the
unprotected actions. A POST needs a valid crumb unless it is authenticated with an API token
(Jenkins >= 2.96) or goes to an unprotected, crumb-exempt action (buildByToken, git/notifyCommit);
--crumb-required-for-tokens emulates older Jenkins.

Test knobs: --slow MS delays every response, --fail-next N answers the next N requests 503; both
also at runtime through POST /__standin/control?slow=MS&fail_next=N (loopback only). Every
accepted trigger and every refusal is written as one JSON line to --log; secrets never are.

  jenkins_standin.py --jobs jobs.json --port-file PORT [--user alice:TOKEN] [--log LOG] ...

jobs.json: {"jobs": [{"name": "a/b/c", "parameters": [{"name": "COMMIT", "default": ""}],
            "token": "remote-secret", "scm": {"url": "...", "branches": ["*/master"]},
            "pollScm": true, "quietPeriod": 0, "disabled": false,
            "steps": [["/usr/bin/jenkins-helper", "-b"], ["/usr/bin/make"], ["/usr/bin/jenkins-helper", "-p"]]}]}
            Steps run (argv, no shell) when the build starts, with JOB_NAME, BUILD_NUMBER, BUILD_URL,
            the parameters, GIT_COMMIT/GIT_BRANCH from COMMIT/BRANCH, and --step-env NAME=VALUE.
users file: {"alice": {"tokens": ["11…"], "password": "pw", "build": true}}
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GIT_DOC = "https://plugins.jenkins.io/git/#plugin-content-push-notification-from-repository"
MAX_BODY = 1024 * 1024


class HttpError(Exception):
    def __init__(self, status, message, headers=None, reason=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.reason = reason or message


class Job:
    def __init__(self, spec, default_quiet):
        self.full_name = spec["name"].strip("/")
        for seg in self.full_name.split("/"):
            if not seg or re.search(r'[?*/\\%!@#$^&|<>\[\]:;]', seg):
                raise ValueError(f"bad job name {self.full_name!r}")
        params = spec.get("parameters")
        self.params = None if params is None else [
            {"name": p["name"], "default": str(p.get("default", ""))} for p in params]
        self.token = spec.get("token")
        scm = spec.get("scm") or {}
        self.scm_url = scm.get("url")
        self.scm_branches = scm.get("branches", ["**"])
        self.poll_scm = bool(spec.get("pollScm", False))
        self.quiet = float(spec.get("quietPeriod", default_quiet))
        self.disabled = bool(spec.get("disabled", False))
        self.next_build = int(spec.get("nextBuildNumber", 1))
        self.builds = []
        # Build steps, like a freestyle job's "Execute shell" but as argv lists (no shell), run
        # when a build starts; the build fails at the first step that exits non-zero.
        self.steps = [list(map(str, st)) for st in spec.get("steps", [])]
        for st in self.steps:
            if not st or not os.path.isabs(st[0]):
                raise ValueError(f"job {self.full_name!r}: a step is an argv list starting with an absolute path")

    @property
    def name(self):
        return self.full_name.rsplit("/", 1)[-1]

    def path(self):
        return "".join("job/" + urllib.parse.quote(s, safe="") + "/" for s in self.full_name.split("/"))


class Item:
    def __init__(self, item_id, job, params, cause, due):
        self.id = item_id
        self.job = job
        self.params = params  # dict or None
        self.causes = [cause]
        self.created = time.time()
        self.due = due
        self.state = "waiting"  # waiting, buildable, left
        self.start_at = None
        self.cancelled = False
        self.number = None


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.jobs = {}
        self.folders = set()
        self.items = {}
        self.next_item = 1
        self.sessions = set()
        self.node = secrets.token_hex(4)
        self.salt = secrets.token_bytes(16)
        self.slow_ms = args.slow
        self.fail_next = args.fail_next
        self.users = {}
        self.log_file = open(args.log, "a", buffering=1) if args.log else None
        self.log_lock = threading.Lock()

    def log(self, **rec):
        rec.setdefault("ts", round(time.time(), 3))
        line = json.dumps(rec, sort_keys=True)
        with self.log_lock:
            if self.log_file:
                self.log_file.write(line + "\n")
                self.log_file.flush()
        if self.args.verbose:
            print(line, file=sys.stderr, flush=True)

    def crumb_for(self, user, session, ip):
        msg = f"{user or 'anonymous'}|{session}|{ip}".encode()
        return hmac.new(self.salt, msg, hashlib.sha256).hexdigest()

    # ---- the queue (called with the lock held) ----

    def schedule(self, job, params, cause, delay_s):
        """Queue.schedule2: an equal item not yet started absorbs the request. Returns
        (item, created)."""
        now = time.time()
        for it in self.items.values():
            if it.job is job and it.state != "left" and it.params == params:
                it.causes.append(cause)
                it.due = min(it.due, now + max(delay_s, 0))
                return it, False
        it = Item(self.next_item, job, params, cause, now + max(delay_s, 0))
        self.next_item += 1
        self.items[it.id] = it
        return it, True

    def tick(self):
        now = time.time()
        with self.lock:
            for it in list(self.items.values()):
                if it.state == "waiting" and it.due <= now:
                    it.state = "buildable"
                    it.start_at = now + self.args.start_delay
                if it.state == "buildable" and it.start_at <= now:
                    it.state = "left"
                    job = it.job
                    it.number = job.next_build
                    job.next_build += 1
                    build = {"number": it.number, "queue_id": it.id, "params": it.params,
                             "started": now, "result": None, "steps": bool(job.steps)}
                    job.builds.insert(0, build)
                    self.log(event="started", job=job.full_name, number=it.number, queue_id=it.id,
                             params=it.params)
                    if job.steps:
                        threading.Thread(target=self.run_steps, args=(job, build), daemon=True).start()
            for b in (b for j in self.jobs.values() for b in j.builds):
                if b["result"] is None and not b["steps"] and now >= b["started"] + self.args.build_seconds:
                    b["result"] = "SUCCESS"
            # Jenkins forgets left items after five minutes.
            for k in [k for k, it in self.items.items() if it.state == "left" and now - it.created > 300]:
                del self.items[k]


    def run_steps(self, job, build):
        """Runs a build's steps with the environment Jenkins gives them: the build's variables,
        its parameters, and the git plugin's GIT_COMMIT/GIT_BRANCH when the build was given a
        COMMIT/BRANCH. A clean environment otherwise; each step has a deadline."""
        import subprocess
        url = f"{self.root_url}{job.path()}{build['number']}/"
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
               "JENKINS_URL": self.root_url, "JOB_NAME": job.full_name, "JOB_BASE_NAME": job.name,
               "BUILD_NUMBER": str(build["number"]), "BUILD_ID": str(build["number"]),
               "BUILD_URL": url, "JOB_URL": f"{self.root_url}{job.path()}",
               "BUILD_TAG": f"jenkins-{job.full_name.replace('/', '-')}-{build['number']}"}
        params = build["params"] or {}
        env.update({k: str(v) for k, v in params.items()})
        if params.get("COMMIT"):
            env["GIT_COMMIT"] = params["COMMIT"]
        if params.get("BRANCH"):
            env["GIT_BRANCH"] = "origin/" + params["BRANCH"]
        env.update(self.args.step_env)
        result = "SUCCESS"
        for argv in job.steps:
            try:
                rc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, timeout=60).returncode
            except (OSError, subprocess.TimeoutExpired) as e:
                rc = repr(e)
            self.log(event="step", job=job.full_name, number=build["number"], argv=argv, rc=rc)
            if rc != 0:
                result = "FAILURE"
                break
        with self.lock:
            build["result"] = result
        self.log(event="completed", job=job.full_name, number=build["number"], result=result)


def parse_delay(value):
    """jenkins.util.TimeDuration.fromString: '5sec' = 5 s, a bare number = milliseconds."""
    v = value.strip()
    mult = 1
    if v.endswith("sec") or v.endswith("secs"):
        v = v[: v.rfind("sec")].strip()
        mult = 1000
    try:
        return int(v) * mult / 1000.0
    except ValueError:
        raise HttpError(400, "Invalid time duration value: " + value, reason="bad delay")


def loosely_matches(a, b):
    """GitStatus.looselyMatches: same host, same path without leading/trailing '/' and '.git'."""
    def norm(u):
        u = u.strip()
        m = re.match(r"^[a-z+]+://(?:[^@/]*@)?([^/:]+)(?::\d+)?(/.*)?$", u)
        if m:
            host, path = m.group(1), m.group(2) or ""
        else:  # scp-like user@host:path
            m = re.match(r"^(?:[^@]*@)?([^:/]+):(.*)$", u)
            host, path = (m.group(1), m.group(2)) if m else ("", u)
        path = path.strip("/")
        if path.endswith(".git"):
            path = path[:-4]
        return host.lower(), path
    return norm(a) == norm(b)


def branch_spec_matches(spec, branch):
    """BranchSpec.matches("origin/" + branch), for the spec forms jobs use."""
    if spec in ("**", "*/*", "*"):
        return True
    name = spec
    for p in ("refs/heads/", "origin/", "*/"):
        if name.startswith(p):
            name = name[len(p):]
    return name == branch


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def version_string(self):
        return "Jetty(10.0.20)"

    def log_message(self, fmt, *args):  # quiet: the JSON log says what matters
        if self.server.state.args.verbose:
            sys.stderr.write("standin: " + fmt % args + "\n")

    # ---- plumbing ----

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def send(self, status, body="", ctype="text/html;charset=utf-8", headers=None):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("X-Jenkins", self.server.state.args.version)
        self.send_header("X-Hudson", "1.395")
        self.send_header("X-Jenkins-Session", self.server.state.node)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            if isinstance(v, list):
                for x in v:
                    self.send_header(k, x)
            else:
                self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_json(self, obj, headers=None):
        self.send(200, json.dumps(obj), "application/json;charset=utf-8", headers)

    def error_page(self, e):
        body = (f"<html><head><title>Error {e.status} {e.message}</title></head><body>"
                f"<h2>HTTP ERROR {e.status} {e.message}</h2></body></html>")
        self.send(e.status, body, headers=e.headers)

    def base(self):
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"
        return f"http://{host}{self.server.state.args.prefix}"

    def root_url(self):
        return self.server.state.args.root_url or (self.base() + "/")

    def param(self, name):
        v = self.params.get(name)
        return v[0] if v else None

    def dispatch(self, method):
        st = self.server.state
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        self.params = {}
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.send(413, "Request Entity Too Large")
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        # ServletRequest.getParameter: the query string first, then a form body.
        for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items():
            self.params.setdefault(k, []).extend(v)
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if method == "POST" and ctype == "application/x-www-form-urlencoded":
            try:
                form = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
            except UnicodeDecodeError:
                form = {}
            for k, v in form.items():
                self.params.setdefault(k, []).extend(v)

        if path.startswith("/__standin/"):
            return self.control(method, path)

        with st.lock:
            slow = st.slow_ms
            fail = st.fail_next > 0
            if fail:
                st.fail_next -= 1
        if slow:
            time.sleep(slow / 1000.0)
        if fail:
            st.log(event="reject", method=method, path=path, status=503, reason="--fail-next")
            return self.send(503, "<html><body>Jenkins is getting ready to work ...</body></html>",
                             headers={"Retry-After": "1"})
        try:
            prefix = st.args.prefix
            if prefix:
                if not (path == prefix or path.startswith(prefix + "/")):
                    raise HttpError(404, "Not Found")
                path = path[len(prefix):] or "/"
            self.route(method, path)
        except HttpError as e:
            st.log(event="reject", method=method, path=path, status=e.status, reason=e.reason,
                   user=getattr(self, "user", None))
            self.error_page(e)
        except BrokenPipeError:
            pass

    def control(self, method, path):
        st = self.server.state
        if self.client_address[0] not in ("127.0.0.1", "::1"):
            return self.send(403, "loopback only")
        if path == "/__standin/control" and method == "POST":
            with st.lock:
                if self.param("slow") is not None:
                    st.slow_ms = int(self.param("slow"))
                if self.param("fail_next") is not None:
                    st.fail_next = int(self.param("fail_next"))
            return self.send_json({"slow": st.slow_ms, "fail_next": st.fail_next})
        if path == "/__standin/state" and method == "GET":
            with st.lock:
                jobs = {j.full_name: [b["number"] for b in j.builds] for j in st.jobs.values()}
                queue = [{"id": i.id, "job": i.job.full_name, "state": i.state} for i in st.items.values()]
            return self.send_json({"jobs": jobs, "queue": queue})
        return self.send(404, "Not Found")

    # ---- authentication, permissions, CSRF ----

    def authenticate(self):
        """Sets self.user (None = anonymous) and self.auth (anonymous|token|password)."""
        st = self.server.state
        self.user, self.auth = None, "anonymous"
        h = self.headers.get("Authorization")
        if not h:
            return
        scheme, _, value = h.partition(" ")
        if scheme.lower() != "basic":
            raise HttpError(401, "Unauthorized", {"WWW-Authenticate": 'Basic realm="Jenkins"'}, "unsupported auth scheme")
        try:
            user, _, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except Exception:
            raise HttpError(400, "Bad Request", reason="malformed Basic header")
        u = st.users.get(user)
        if u and any(hmac.compare_digest(secret, t) for t in u.get("tokens", [])):
            self.user, self.auth = user, "token"
        elif u and u.get("password") is not None and hmac.compare_digest(secret, u["password"]):
            self.user, self.auth = user, "password"
        else:
            raise HttpError(401, "Invalid password/token for user: " + user,
                            {"WWW-Authenticate": 'Basic realm="Jenkins"'}, "bad credentials")

    def denied(self, permission):
        if self.user is None:
            return HttpError(403, "Authentication required",
                             {"X-You-Are-Authenticated-As": "anonymous",
                              "X-Required-Permission": permission}, "anonymous lacks " + permission)
        return HttpError(403, f"{self.user} is missing the {permission} permission",
                         {"X-You-Are-Authenticated-As": self.user}, "user lacks " + permission)

    def require_read(self):
        if self.user is None and self.server.state.args.anonymous_forbidden:
            raise self.denied("hudson.model.Hudson.Read")

    def can_build(self):
        if self.user is None:
            return False
        return self.server.state.users[self.user].get("build", True)

    def session_id(self):
        name = "JSESSIONID." + self.server.state.node
        for part in (self.headers.get("Cookie") or "").split(";"):
            k, _, v = part.strip().partition("=")
            if k == name and v in self.server.state.sessions:
                return v
        return None

    def check_crumb(self, path):
        """hudson.security.csrf.CrumbFilter for a POST. Returns how it was satisfied."""
        st = self.server.state
        if st.args.no_crumbs:
            return "disabled"
        if path.startswith("/buildByToken/") or path == "/git/notifyCommit":
            return "exempt"
        if self.auth == "token" and not st.args.crumb_required_for_tokens:
            return "not-required"
        crumb = self.headers.get("Jenkins-Crumb") or self.param("Jenkins-Crumb")
        sid = self.session_id()
        if crumb and sid and hmac.compare_digest(crumb, st.crumb_for(self.user, sid, self.client_address[0])):
            return "valid"
        why = "no crumb" if not crumb else ("no session cookie" if not sid else "crumb does not match")
        raise HttpError(403, "No valid crumb was included in the request", reason=why)

    # ---- routing ----

    def route(self, method, path):
        st = self.server.state
        self.authenticate()
        self.crumb = None
        if method == "POST":
            self.crumb = self.check_crumb(path)

        if path == "/crumbIssuer/api/json":
            if method != "GET":
                raise HttpError(405, "Method Not Allowed")
            if st.args.no_crumbs:
                raise HttpError(404, "Not Found", reason="crumbs disabled")
            self.require_read()
            headers = {}
            sid = self.session_id()
            if not sid:
                sid = secrets.token_hex(12)
                with st.lock:
                    st.sessions.add(sid)
                headers["Set-Cookie"] = f"JSESSIONID.{st.node}={sid}; Path=/; HttpOnly"
            st.log(event="crumb", user=self.user)
            return self.send_json({"_class": "hudson.security.csrf.DefaultCrumbIssuer",
                                   "crumb": st.crumb_for(self.user, sid, self.client_address[0]),
                                   "crumbRequestField": "Jenkins-Crumb"}, headers)
        if path in ("/api/json", "/api/json/"):
            self.require_read()
            with st.lock:
                jobs = [self.job_ref(j) for j in st.jobs.values() if "/" not in j.full_name]
                jobs += [self.folder_ref(f) for f in sorted(st.folders) if "/" not in f]
            return self.send_json({"_class": "hudson.model.Hudson", "jobs": jobs,
                                   "useCrumbs": not st.args.no_crumbs, "useSecurity": True,
                                   "url": self.root_url()})
        m = re.fullmatch(r"/queue/item/(\d+)/api/json", path)
        if m:
            self.require_read()
            return self.queue_item(int(m.group(1)))
        if path == "/queue/cancelItem":
            if method != "POST":
                raise HttpError(405, "Method Not Allowed")
            if not self.can_build():
                raise self.denied("hudson.model.Item.Cancel")
            with st.lock:
                it = st.items.get(int(self.param("id") or 0))
                if it and it.state != "left":
                    it.state, it.cancelled = "left", True
            return self.send(302, "", headers={"Location": self.base() + "/queue/"})
        if path in ("/buildByToken/build", "/buildByToken/buildWithParameters"):
            return self.build_by_token(method, path.rsplit("/", 1)[1])
        if path == "/git/notifyCommit":
            return self.notify_commit(method)
        if path.startswith("/job/"):
            return self.job_route(method, path)
        self.require_read()
        raise HttpError(404, "Not Found")

    def job_ref(self, j):
        return {"_class": "hudson.model.FreeStyleProject", "name": j.name, "fullName": j.full_name,
                "url": self.root_url() + j.path(), "color": "blue" if j.builds else "notbuilt"}

    def folder_ref(self, f):
        return {"_class": "com.cloudbees.hudson.plugins.folder.Folder", "name": f.rsplit("/", 1)[-1],
                "fullName": f, "url": self.root_url() + "".join("job/" + urllib.parse.quote(s, safe="") + "/" for s in f.split("/"))}

    def build_ref(self, j, b):
        return {"_class": "hudson.model.FreeStyleBuild", "number": b["number"],
                "url": self.root_url() + j.path() + f"{b['number']}/"}

    def queue_item(self, item_id):
        st = self.server.state
        with st.lock:
            it = st.items.get(item_id)
            if not it:
                raise HttpError(404, "Not Found", reason="no such queue item")
            j = it.job
            actions = [{"_class": "hudson.model.CauseAction", "causes": it.causes}]
            if it.params is not None:
                actions.append({"_class": "hudson.model.ParametersAction", "parameters": [
                    {"_class": "hudson.model.StringParameterValue", "name": k, "value": v} for k, v in it.params.items()]})
            out = {"actions": actions, "blocked": False, "buildable": it.state == "buildable", "id": it.id,
                   "inQueueSince": int(it.created * 1000), "params": "".join(f"\n{k}={v}" for k, v in (it.params or {}).items()),
                   "stuck": False, "task": {"_class": "hudson.model.FreeStyleProject", "name": j.name,
                                            "url": self.root_url() + j.path(), "color": "blue"},
                   "url": f"queue/item/{it.id}/", "why": None}
            if it.state == "waiting":
                out["_class"] = "hudson.model.Queue$WaitingItem"
                out["timestamp"] = int(it.due * 1000)
                out["why"] = f"In the quiet period. Expires in {max(it.due - time.time(), 0):.2f} sec"
            elif it.state == "buildable":
                out["_class"] = "hudson.model.Queue$BuildableItem"
                out["why"] = "Waiting for next available executor"
                out["pending"] = False
            else:
                out["_class"] = "hudson.model.Queue$LeftItem"
                out["cancelled"] = it.cancelled
                out["executable"] = None if it.cancelled else {
                    "_class": "hudson.model.FreeStyleBuild", "number": it.number,
                    "url": self.root_url() + j.path() + f"{it.number}/"}
        return self.send_json(out)

    def find_job(self, full_name):
        return self.server.state.jobs.get(full_name)

    def job_route(self, method, path):
        st = self.server.state
        parts = path.split("/")[1:]
        names = []
        while len(parts) >= 2 and parts[0] == "job":
            names.append(urllib.parse.unquote(parts[1]))
            parts = parts[2:]
        rest = "/".join(parts).rstrip("/")
        full = "/".join(names)
        self.require_read()
        with st.lock:
            job = self.find_job(full)
            folder = full in st.folders
        if not job and not folder:
            raise HttpError(404, "Not Found", reason="no such job " + full)
        if folder:
            if rest == "api/json":
                with st.lock:
                    kids = [self.job_ref(j) for j in st.jobs.values() if j.full_name.rsplit("/", 1)[0] == full and "/" in j.full_name]
                    kids += [self.folder_ref(f) for f in st.folders if f.rsplit("/", 1)[0] == full and "/" in f]
                ref = self.folder_ref(full)
                ref["jobs"] = kids
                return self.send_json(ref)
            raise HttpError(404, "Not Found", reason="folder has no " + rest)
        if rest in ("build", "buildWithParameters"):
            return self.trigger(method, job, rest)
        if rest == "api/json":
            with st.lock:
                out = self.job_ref(job)
                out.update({"displayName": job.name, "buildable": not job.disabled,
                            "builds": [self.build_ref(job, b) for b in job.builds],
                            "lastBuild": self.build_ref(job, job.builds[0]) if job.builds else None,
                            "nextBuildNumber": job.next_build,
                            "inQueue": any(i.job is job and i.state != "left" for i in st.items.values()),
                            "property": []})
                if job.params is not None:
                    out["property"].append({"_class": "hudson.model.ParametersDefinitionProperty", "parameterDefinitions": [
                        {"_class": "hudson.model.StringParameterDefinition", "name": p["name"], "type": "StringParameterDefinition",
                         "defaultParameterValue": {"_class": "hudson.model.StringParameterValue", "name": p["name"], "value": p["default"]}}
                        for p in job.params]})
            return self.send_json(out)
        m = re.fullmatch(r"(\d+|lastBuild)/api/json", rest)
        if m:
            with st.lock:
                bs = job.builds if m.group(1) == "lastBuild" else [b for b in job.builds if str(b["number"]) == m.group(1)]
                if not bs:
                    raise HttpError(404, "Not Found")
                b = bs[0]
                out = self.build_ref(job, b)
                out.update({"building": b["result"] is None, "result": b["result"], "queueId": b["queue_id"],
                            "fullDisplayName": f"{job.full_name} #{b['number']}"})
            return self.send_json(out)
        if rest == "":
            return self.send(200, f"<html><body>{job.full_name}</body></html>")
        raise HttpError(404, "Not Found")

    # ---- triggers ----

    def check_build_permission(self, method, job):
        """hudson.model.BuildAuthorizationToken.checkPermission. Returns True when the job's
        token authorised the request."""
        provided = self.param("token")
        if job.token is not None and provided is not None:
            if hmac.compare_digest(provided, job.token):
                return True
            raise HttpError(403, "Invalid token provided.", reason="wrong job token")
        if not self.can_build():
            raise self.denied("hudson.model.Item.Build")
        if method == "POST" or self.auth == "token":
            return False
        raise HttpError(405, "This URL requires POST", {"Allow": "POST"}, "GET without a token")

    def cause(self, job, token_used):
        # ParameterizedJobMixIn.getBuildCause: the note only counts with a token.
        if token_used:
            note = self.param("cause")
            return {"_class": "hudson.model.Cause$RemoteCause", "addr": self.client_address[0], "note": note,
                    "shortDescription": f"Started by remote host {self.client_address[0]}" + (f" with note: {note}" if note else "")}
        return {"_class": "hudson.model.Cause$UserIdCause", "userId": self.user,
                "shortDescription": f"Started by user {self.user or 'anonymous'}"}

    def with_defaults(self, job, given):
        values = {}
        for p in job.params:
            values[p["name"]] = given.get(p["name"], p["default"])
        return values

    def trigger(self, method, job, action):
        st = self.server.state
        delay_s = parse_delay(self.param("delay")) if self.param("delay") is not None else job.quiet
        if action == "build":
            if job.disabled:
                raise HttpError(409, f"{job.full_name} is not buildable", reason="disabled")
            if job.params is not None and method != "POST":
                return self.send(200, "<html><body>parameters form</body></html>")
            token_used = self.check_build_permission(method, job)
            if job.params is not None:
                # ParametersDefinitionProperty._doBuild: a structured form in `json`.
                raw = self.param("json")
                if not raw:
                    if self.params:
                        raise HttpError(500, "javax.servlet.ServletException: This page expects a form submission but had only "
                                        + str(sorted(k for k in self.params if k not in ("token", "Jenkins-Crumb"))), reason="no json field")
                    raise HttpError(400, "Nothing is submitted", reason="parameterized job, no json")
                try:
                    form = json.loads(raw)
                    ps = form.get("parameter", [])
                    ps = [ps] if isinstance(ps, dict) else ps
                    given = {}
                    for p in ps:
                        if not any(d["name"] == p["name"] for d in job.params):
                            raise HttpError(500, "java.lang.IllegalArgumentException: No such parameter definition: " + p["name"],
                                            reason="undefined parameter")
                        given[p["name"]] = str(p.get("value", ""))
                except (ValueError, KeyError, TypeError, AttributeError):
                    raise HttpError(400, "Bad Request", reason="malformed json field")
                params = self.with_defaults(job, given)
                with st.lock:
                    item, created = st.schedule(job, params, self.cause(job, False), delay_s)
                self.log_trigger("build", job, item, created, params, token_used)
                if not created:  # Queue.schedule → null → sendRedirect(".")
                    return self.send(303, "", headers={"Location": self.root_url() + job.path()})
                return self.send(201, "", headers={"Location": f"{self.base()}/queue/item/{item.id}/"})
            with st.lock:
                item, created = st.schedule(job, None, self.cause(job, token_used), delay_s)
            self.log_trigger("build", job, item, created, None, token_used)
            return self.send(201, "", headers={"Location": f"{self.base()}/queue/item/{item.id}/"})
        # buildWithParameters
        token_used = self.check_build_permission(method, job)
        if job.disabled:
            raise HttpError(409, f"{job.full_name} is not buildable!", reason="disabled")
        if job.params is None:
            raise HttpError(500, "java.lang.IllegalStateException: This build is not parameterized!", reason="not parameterized")
        defined = {p["name"] for p in job.params}
        given = {k: v[0] for k, v in self.params.items() if k in defined}
        params = self.with_defaults(job, given)
        with st.lock:
            item, created = st.schedule(job, params, self.cause(job, token_used), delay_s)
        ignored = sorted(k for k in self.params if k not in defined and k not in ("token", "delay", "cause", "Jenkins-Crumb"))
        self.log_trigger("buildWithParameters", job, item, created, params, token_used, ignored=ignored)
        return self.send(201, "", headers={"Location": f"{self.base()}/queue/item/{item.id}/"})

    def log_trigger(self, via, job, item, created, params, token_used, **extra):
        self.server.state.log(event="trigger", via=via, job=job.full_name, queue_id=item.id, created=created,
                              params=params, user=self.user, auth=self.auth, crumb=self.crumb,
                              token=token_used, cause=item.causes[-1].get("note"), **extra)

    def build_by_token(self, method, action):
        st = self.server.state
        name = self.param("job")
        with st.lock:
            job = self.find_job((name or "").strip("/"))
        if not job or job.token is None:
            # "For jobs without tokens, prefer not to leak information about their existence."
            raise HttpError(404, "Not Found", reason="no such job or job has no token")
        token_used = self.check_build_permission(method, job)
        if job.disabled:
            raise HttpError(400, f"{job.full_name} is not buildable", reason="disabled")
        delay_s = parse_delay(self.param("delay")) if self.param("delay") is not None else job.quiet
        cause = {"_class": "hudson.model.Cause$RemoteCause", "addr": self.client_address[0], "note": self.param("cause"),
                 "shortDescription": f"Started by remote host {self.client_address[0]}"}
        if action == "build":
            if job.params is not None:
                raise HttpError(400, "Use /buildByToken/buildWithParameters for this job since it takes parameters", reason="wrong kind")
            params = None
        else:
            if job.params is None:
                raise HttpError(400, "Use /buildByToken/build for this job since it takes no parameters", reason="wrong kind")
            params = self.with_defaults(job, {k: v[0] for k, v in self.params.items() if any(p["name"] == k for p in job.params)})
        with st.lock:
            item, created = st.schedule(job, params, cause, delay_s)
        self.log_trigger("buildByToken/" + action, job, item, created, params, token_used)
        if not created:  # Queue.schedule returned null: already queued
            return self.send(303, "", headers={"Location": self.base() + "/buildByToken/"})
        return self.send(201, "Scheduled.\n", headers={"Location": f"{self.base()}/queue/item/{item.id}/"})

    def notify_commit(self, method):
        st = self.server.state
        url, branches, sha1, token = self.param("url"), self.param("branches"), self.param("sha1"), self.param("token")
        mode = st.args.notify_access_control
        if not url:
            raise HttpError(400, "Required Query Parameter 'url' is missing", reason="no url")
        if sha1 is not None and sha1 != "" and not re.fullmatch(r"[0-9a-fA-F]{6,40}", sha1):
            raise HttpError(400, "Illegal SHA1", reason="bad sha1")
        needs_token = mode == "enabled" or (mode == "disabled-for-polling" and sha1)
        if needs_token:
            if not token:
                raise HttpError(401, f"An access token is required. Please refer to Git plugin documentation ({GIT_DOC}) for details.",
                                reason="notifyCommit without token")
            if not any(hmac.compare_digest(token, t) for t in st.args.notify_token):
                raise HttpError(403, "Invalid access token", reason="wrong notifyCommit token")
        wanted = [b.strip() for b in (branches or "").split(",") if b.strip()]
        lines, triggered = [], []
        scm_found = False
        with st.lock:
            for job in st.jobs.values():
                if not job.scm_url:
                    continue
                scm_found = True
                if not loosely_matches(url, job.scm_url) or not job.poll_scm or job.disabled:
                    continue
                if wanted and not any(branch_spec_matches(s, b) for s in job.scm_branches for b in wanted):
                    continue
                params = self.with_defaults(job, {}) if job.params is not None else None
                cause = {"_class": "hudson.triggers.SCMTrigger$SCMTriggerCause", "shortDescription": "Started by an SCM change"}
                if sha1:
                    cause = {"_class": "hudson.plugins.git.GitStatus$CommitHookCause", "sha1": sha1,
                             "shortDescription": "commit notification " + sha1}
                    lines.append("Scheduled " + job.full_name)
                else:
                    lines.append("Scheduled polling of " + job.full_name)
                item, created = st.schedule(job, params, cause, job.quiet)
                triggered.append(self.root_url() + job.path())
                self.log_trigger("notifyCommit", job, item, created, params, False, sha1=sha1, branches=wanted,
                                 polling=not sha1)
        if not scm_found:
            lines.append("No git jobs found")
        elif not triggered:
            lines.append(f"No git jobs using repository: {url} and branches: {','.join(wanted)}")
            st.log(event="notify-unmatched", url=url, branches=wanted)
        return self.send(200, "".join(l + "\n" for l in lines), "text/plain;charset=utf-8",
                         {"Triggered": triggered[:10]} if triggered else None)


def load_users(args):
    users = {}
    if args.users:
        with open(args.users) as f:
            users.update(json.load(f))
    for spec in args.user:
        name, _, token = spec.partition(":")
        users.setdefault(name, {}).setdefault("tokens", []).append(token)
    for spec in args.user_password:
        name, _, pw = spec.partition(":")
        users.setdefault(name, {})["password"] = pw
    return users


def main():
    ap = argparse.ArgumentParser(description="Jenkins remote-API stand-in for tests")
    ap.add_argument("--jobs", required=True, help="jobs JSON file")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", help="write the bound port here once ready")
    ap.add_argument("--prefix", default="", help="context path, e.g. /jenkins")
    ap.add_argument("--root-url", help="Jenkins root URL used in API JSON (default: from the Host header)")
    ap.add_argument("--users", help="users JSON file")
    ap.add_argument("--user", action="append", default=[], help="NAME:APITOKEN (repeatable)")
    ap.add_argument("--user-password", action="append", default=[], help="NAME:PASSWORD (repeatable)")
    ap.add_argument("--anonymous-forbidden", action="store_true", help="anonymous has no Overall/Read")
    ap.add_argument("--no-crumbs", action="store_true", help="CSRF protection disabled (crumb issuer 404)")
    ap.add_argument("--crumb-required-for-tokens", action="store_true", help="old Jenkins: API-token requests need crumbs too")
    ap.add_argument("--notify-token", action="append", default=[], help="git plugin notifyCommit access token (repeatable)")
    ap.add_argument("--notify-access-control", default="enabled", choices=["enabled", "disabled-for-polling", "disabled"])
    ap.add_argument("--quiet-period", type=float, default=0.3, help="default job quiet period, seconds")
    ap.add_argument("--start-delay", type=float, default=0.2, help="buildable → started, seconds")
    ap.add_argument("--build-seconds", type=float, default=0.5)
    ap.add_argument("--slow", type=int, default=0, help="delay every response by MS")
    ap.add_argument("--fail-next", type=int, default=0, help="answer the next N requests 503")
    ap.add_argument("--log", help="JSON-lines log of triggers and refusals")
    ap.add_argument("--version", default="2.440.3", help="X-Jenkins header")
    ap.add_argument("--step-env", action="append", default=[], help="NAME=VALUE added to build steps' environment")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    args.prefix = args.prefix.rstrip("/")
    args.step_env = dict(kv.split("=", 1) for kv in args.step_env)

    st = State(args)
    st.users = load_users(args)
    with open(args.jobs) as f:
        spec = json.load(f)
    for js in spec.get("jobs", []):
        j = Job(js, args.quiet_period)
        st.jobs[j.full_name] = j
        segs = j.full_name.split("/")
        for i in range(1, len(segs)):
            st.folders.add("/".join(segs[:i]))

    srv = ThreadingHTTPServer((args.host, args.port), Handler)
    srv.daemon_threads = True
    srv.state = st
    stop = threading.Event()

    def ticker():
        while not stop.wait(0.02):
            st.tick()

    threading.Thread(target=ticker, daemon=True).start()

    def on_term(signum, frame):
        stop.set()
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    port = srv.server_address[1]
    st.root_url = (args.root_url or f"http://{args.host}:{port}{args.prefix}").rstrip("/") + "/"
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    st.log(event="ready", port=port)
    srv.serve_forever(poll_interval=0.1)
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
