#!/usr/bin/env python3
"""Runs the real open-source ZenML server (zenml[server], from the conformance venv)
on a free loopback port, with SQLite in a given data directory.

    "$VENV/bin/python" tests/zenml/server.py --data DIR \
        [--admin-user NAME] [--admin-password PW] [--rbac]

Prints exactly one line, ``zenml listening on http://127.0.0.1:PORT``, on stdout
(flushed) once ``GET /health`` answers and the admin user can log in with
``grant_type=password``; startup timings go to stderr. Runs until SIGTERM/SIGINT,
and dies with its parent (PR_SET_PDEATHSIG, set on this process and on the uvicorn
child). Defaults: admin user ``admin``, password ``admin-password-for-tests``.

Importable for pytest::

    from server import ZenmlServer          # with tests/zenml on sys.path
    with ZenmlServer(data_dir, rbac=False) as srv:
        srv.url, srv.admin_user, srv.admin_password, srv.admin_token()

How the server is run
---------------------
``uvicorn zenml.zen_server.zen_server_api:app`` in a child process bound to a socket
this script opened (``--fd``, so there is no port race), with its own
``ZENML_CONFIG_PATH`` / ``ZENML_LOCAL_STORES_PATH`` under DIR and:
``ZENML_STORE_URL=sqlite:///DIR/zenml.db``, ``ZENML_SERVER_AUTH_SCHEME=OAUTH2_PASSWORD_BEARER``,
``ZENML_SERVER_AUTO_ACTIVATE=true`` with ``ZENML_DEFAULT_USER_NAME`` /
``ZENML_DEFAULT_USER_PASSWORD`` (the server creates that admin user on first start),
``ZENML_SERVER_JWT_SECRET_KEY`` (random per data dir, kept in DIR so restarts keep
sessions valid), analytics off. ``zenml login --local`` is not usable here: it forces
``NO_AUTH``.

--rbac: what the installed source says (zenml 0.98.0)
-----------------------------------------------------
* ``ServerConfiguration.rbac_implementation_source`` (env
  ``ZENML_SERVER_RBAC_IMPLEMENTATION_SOURCE``; every ``ZENML_SERVER_*`` variable maps to a
  lower-cased field) is read by ``zen_server.utils.initialize_rbac()`` during the app's
  lifespan start-up; it loads the class with ``source_utils.load_and_validate_class(src,
  expected_class=RBACInterface)`` and instantiates it without arguments. Nothing
  restricts it to ZenML Pro: the open-source server loads any importable class.
* ``ServerConfiguration.rbac_enabled`` is simply ``rbac_implementation_source is not
  None``. ``verify_admin_status_if_no_rbac()`` (the check behind ``403
  IllegalOperationError: Only admin users can perform `create API key` without RBAC
  enabled``) is a no-op once RBAC is enabled; the per-resource checks
  (``verify_permission_for_model`` etc.) then ask the RBAC class.
* So ``--rbac`` sets that variable to ``allow_all_rbac.AllowAllRBAC`` (tests/zenml/
  allow_all_rbac.py, on PYTHONPATH), which allows every action to every authenticated
  account: a service-account API key can then create/update/rotate/delete keys, as on
  ZenML Pro with a role granting it. (Pro's real class is
  ``zenml.zen_server.rbac.zenml_cloud_rbac.ZenMLCloudRBAC``, which calls the Pro API.)

Creating a service account and its API key via REST (as the admin user)
-----------------------------------------------------------------------
    POST /api/v1/login  (form) grant_type=password&username=admin&password=…
         -> {"access_token": JWT, "token_type": "bearer", "expires_in": null, …}
    POST /api/v1/service_accounts  Authorization: Bearer JWT
         {"name": "ci-bot", "description": "…", "active": true}   -> 200, account (body.active)
    POST /api/v1/service_accounts/{sa_id}/api_keys  Authorization: Bearer JWT
         {"name": "k1", "description": "…"}  -> 200, key with body.key = "ZENKEY_…"
    POST /api/v1/login  (form) grant_type=zenml-api-key&password=ZENKEY_…
         -> bearer for the service account
See ``ZenmlServer.create_service_account`` / ``create_api_key`` below.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import json
import hashlib
import shutil
import sqlite3
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ADMIN_USER = "admin"
DEFAULT_ADMIN_PASSWORD = "admin-password-for-tests"
RBAC_SOURCE = "allow_all_rbac.AllowAllRBAC"
PR_SET_PDEATHSIG = 1


def set_pdeathsig(sig: int = signal.SIGTERM) -> None:
    """Asks Linux to send `sig` to this process when its parent dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: best effort
        pass


def _child_preexec(parent_pid: int) -> None:
    set_pdeathsig(signal.SIGTERM)
    # The parent may have died between fork and prctl.
    if os.getppid() != parent_pid:
        os._exit(1)


def _http(method: str, url: str, data: bytes | None = None, headers: dict | None = None, timeout: float = 5.0):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class ZenmlServer:
    """The real ZenML server as a child process. Use as a context manager."""

    def __init__(
        self,
        data_dir: str,
        admin_user: str = DEFAULT_ADMIN_USER,
        admin_password: str = DEFAULT_ADMIN_PASSWORD,
        rbac: bool = False,
        python: str | None = None,
        log_path: str | None = None,
        timeout: float = 120.0,
    ) -> None:
        self.data_dir = os.path.abspath(data_dir)
        self.admin_user = admin_user
        self.admin_password = admin_password
        self.rbac = rbac
        self.python = python or sys.executable
        self.log_path = log_path or os.path.join(self.data_dir, "server.log")
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self.startup_seconds: float | None = None
        self.used_template = False

    # -- start-up cache ----------------------------------------------------------
    # A fresh SQLite database costs the server ~5 s of migrations and admin-user
    # creation on first start. After a fresh start has succeeded, a consistent copy of
    # the database (sqlite3 backup API) is kept per (zenml version, admin user,
    # password) in the user's cache; later fresh data dirs start from that copy.
    # ZENML_TEST_SERVER_NO_TEMPLATE=1 disables it.
    def _db_path(self) -> str:
        return os.path.join(self.data_dir, "zenml.db")

    def _template_path(self) -> str | None:
        if os.environ.get("ZENML_TEST_SERVER_NO_TEMPLATE"):
            return None
        try:
            from importlib.metadata import version

            zversion = version("zenml")
        except Exception:
            return None
        key = hashlib.sha256(
            "\0".join([zversion, self.admin_user, self.admin_password]).encode()
        ).hexdigest()[:24]
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return os.path.join(cache, "apikey-operator", "zenml-server-template", f"{zversion}-{key}.db")

    # -- lifecycle -------------------------------------------------------------
    def _env(self) -> dict:
        d = self.data_dir
        secret_file = os.path.join(d, "jwt-secret")
        if not os.path.exists(secret_file):
            fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        with open(secret_file) as f:
            jwt_secret = f.read().strip()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZENML_")}
        env.update(
            ZENML_CONFIG_PATH=os.path.join(d, "config"),
            ZENML_LOCAL_STORES_PATH=os.path.join(d, "local_stores"),
            ZENML_STORE_URL="sqlite:///" + self._db_path(),
            ZENML_SERVER_AUTH_SCHEME="OAUTH2_PASSWORD_BEARER",
            ZENML_SERVER_AUTO_ACTIVATE="true",
            ZENML_DEFAULT_USER_NAME=self.admin_user,
            ZENML_DEFAULT_USER_PASSWORD=self.admin_password,
            ZENML_SERVER_JWT_SECRET_KEY=jwt_secret,
            ZENML_ANALYTICS_OPT_IN="false",
            ZENML_ENABLE_REPO_INIT_WARNINGS="false",
            ZENML_LOGGING_VERBOSITY="WARN",
            ZENML_DEBUG="false",
            AUTO_OPEN_DASHBOARD="false",
        )
        if self.rbac:
            env["ZENML_SERVER_RBAC_IMPLEMENTATION_SOURCE"] = RBAC_SOURCE
            env["PYTHONPATH"] = HERE + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env

    def start(self) -> "ZenmlServer":
        os.makedirs(self.data_dir, exist_ok=True)
        t0 = time.monotonic()
        template = self._template_path()
        fresh = not os.path.exists(self._db_path())
        if fresh and template and os.path.exists(template):
            shutil.copyfile(template, self._db_path())
            # Each server its own deployment id (JWT issuer, session cookie name).
            db = sqlite3.connect(self._db_path())
            try:
                with db:
                    db.execute("UPDATE server_settings SET id = ?", (uuid.uuid4().hex,))
            finally:
                db.close()
            self.used_template = True
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        port = sock.getsockname()[1]
        log = open(self.log_path, "ab")
        me = os.getpid()
        try:
            self.proc = subprocess.Popen(
                [
                    self.python, "-m", "uvicorn", "zenml.zen_server.zen_server_api:app",
                    "--fd", str(sock.fileno()), "--log-level", "warning", "--no-access-log",
                ],
                env=self._env(),
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(sock.fileno(),),
                preexec_fn=lambda: _child_preexec(me),
            )
        finally:
            sock.close()
            log.close()
        self.url = f"http://127.0.0.1:{port}"
        deadline = t0 + self.timeout
        healthy_at = None
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"zenml server exited with {self.proc.returncode} during start-up; see {self.log_path}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"zenml server not ready after {self.timeout}s; see {self.log_path}")
            try:
                if healthy_at is None:
                    st, _ = _http("GET", self.url + "/health", timeout=2)
                    if st == 200:
                        healthy_at = time.monotonic()
                if healthy_at is not None:
                    self.admin_token()
                    break
            except (OSError, RuntimeError):
                pass
            time.sleep(0.1)
        self.startup_seconds = time.monotonic() - t0
        if fresh and template and not self.used_template:
            self._save_template(template)
        how = "cached template db" if self.used_template else ("fresh db" if fresh else "existing db")
        print(
            f"zenml server: healthy after {healthy_at - t0:.2f}s, admin login after "
            f"{self.startup_seconds:.2f}s ({how}, rbac={'on' if self.rbac else 'off'})",
            file=sys.stderr,
            flush=True,
        )
        return self

    def _save_template(self, template: str) -> None:
        try:
            os.makedirs(os.path.dirname(template), exist_ok=True)
            tmp = f"{template}.{os.getpid()}.tmp"
            src = sqlite3.connect(self._db_path())
            dst = sqlite3.connect(tmp)
            try:
                src.backup(dst)
            finally:
                dst.close()
                src.close()
            os.chmod(tmp, 0o600)
            os.replace(tmp, template)
        except (OSError, sqlite3.Error) as e:
            print(f"zenml server: could not cache the template db: {e}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> "ZenmlServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- REST helpers ------------------------------------------------------------
    def login(self, **form) -> dict:
        st, body = _http(
            "POST", self.url + "/api/v1/login",
            data=urllib.parse.urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        if st != 200:
            raise RuntimeError(f"zenml login failed: HTTP {st}")
        return json.loads(body)

    def admin_token(self) -> str:
        return self.login(grant_type="password", username=self.admin_user, password=self.admin_password)[
            "access_token"
        ]

    def api(self, method: str, path: str, token: str, payload=None):
        data = None if payload is None else json.dumps(payload).encode()
        headers = {"Authorization": "Bearer " + token}
        if data is not None:
            headers["Content-Type"] = "application/json"
        st, body = _http(method, self.url + path, data=data, headers=headers)
        return st, (json.loads(body) if body else None)

    def create_service_account(self, name: str, description: str = "", token: str | None = None) -> dict:
        st, body = self.api(
            "POST", "/api/v1/service_accounts", token or self.admin_token(),
            {"name": name, "description": description, "active": True},
        )
        if st != 200:
            raise RuntimeError(f"create service account: HTTP {st} {body}")
        return body

    def create_api_key(self, sa_id: str, name: str, description: str = "", token: str | None = None) -> dict:
        """Returns the key response; body.key holds the ZENKEY_ secret (never log it)."""
        st, body = self.api(
            "POST", f"/api/v1/service_accounts/{sa_id}/api_keys", token or self.admin_token(),
            {"name": name, "description": description},
        )
        if st != 200:
            raise RuntimeError(f"create api key: HTTP {st}")
        return body


def main() -> int:
    set_pdeathsig(signal.SIGTERM)
    p = argparse.ArgumentParser(description="Run the real ZenML server for tests.")
    p.add_argument("--data", required=True, help="data directory (SQLite db, config, log)")
    p.add_argument("--admin-user", default=DEFAULT_ADMIN_USER)
    p.add_argument("--admin-password", default=DEFAULT_ADMIN_PASSWORD)
    p.add_argument("--rbac", action="store_true", help="load the allow-all RBAC implementation")
    a = p.parse_args()

    srv = ZenmlServer(a.data, a.admin_user, a.admin_password, rbac=a.rbac)
    stop_requested: list[float] = []

    def on_signal(signum, _frame):
        # Only signal the child here: waiting in a handler would re-enter Popen.wait.
        if not stop_requested:
            stop_requested.append(time.monotonic())
        if srv.proc is None:
            raise SystemExit(0)
        if srv.proc.poll() is None:
            srv.proc.terminate()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        srv.start()
    except RuntimeError as e:
        print(f"zenml server: {e}", file=sys.stderr, flush=True)
        srv.stop()
        return 1
    if stop_requested:
        if srv.proc.poll() is None:
            srv.proc.terminate()
    else:
        print(f"zenml listening on {srv.url}", flush=True)
    while True:
        try:
            rc = srv.proc.wait(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            if stop_requested and time.monotonic() - stop_requested[0] > 15:
                srv.proc.kill()
    if stop_requested:
        return 0
    print(f"zenml server exited unexpectedly with {rc}; see {srv.log_path}", file=sys.stderr, flush=True)
    return rc or 1

if __name__ == "__main__":
    sys.exit(main())
