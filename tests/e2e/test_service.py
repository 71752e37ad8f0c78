"""Running as a service (issue 10 item 5): the systemd unit of docs/ops verifies with
`systemd-analyze verify`, and `dtm serve` speaks systemd's notify protocol — READY=1 once its
listeners accept, WATCHDOG=1 at half of WatchdogSec, RELOADING=1 then READY=1 around a SIGHUP,
STOPPING=1 when it drains — checked on a real notify socket, as systemd would receive them."""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

import dtmtest as T

UNIT = Path(__file__).resolve().parents[2] / "docs" / "ops" / "dtm.service"


def drain(sock, seconds):
    out, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            out.append(sock.recv(4096).decode())
        except socket.timeout:
            break
    return out


def test_notify_protocol(own_server, tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    try:
        srv = own_server(https=False)
        msgs = drain(sock, 1.5)
        assert msgs and "READY=1" in msgs[0] and f"MAINPID={srv.proc.pid}" in msgs[0], msgs
        assert sum("WATCHDOG=1" in m for m in msgs) >= 3, msgs  # every 0.2 s
        srv.signal(signal.SIGHUP)
        msgs = [m for m in drain(sock, 1.0) if "WATCHDOG" not in m]
        assert [m.split("\n")[0] for m in msgs[:2]] == ["RELOADING=1", "READY=1"], msgs
        assert srv.get("/healthz").status_code == 200
        assert srv.stop() == 0
        msgs = drain(sock, 0.3)
        assert any("STOPPING=1" in m for m in msgs), msgs
    finally:
        sock.close()


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_unit_file_verifies(tmp_path):
    text = UNIT.read_text()
    for key in ("Type=notify", "WatchdogSec=", "NoNewPrivileges=yes", "ProtectSystem=strict",
                "ReadWritePaths=/var/lib/dtm", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert key in text, key
    unit = tmp_path / "dtm.service"
    unit.write_text(text.replace("/usr/local/bin/dtm", T.DTM_BIN))
    p = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, SYSTEMD_LOG_LEVEL="warning"))
    problems = [l for l in (p.stdout + p.stderr).splitlines()
                if "dtm.service" in l and "Unknown user" not in l]  # no dtm user on test hosts
    assert p.returncode == 0 or not problems, p.stdout + p.stderr
    assert not problems, problems
