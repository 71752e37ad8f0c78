"""A backup taken while 500 connections ingest (issue 10, Tests): the restored data dir holds
exactly the snapshot — the manifest's counts, every record acknowledged before the backup began,
nothing never sent — and a second server on it answers the same statistics as the records it
holds. The load is 500 kept-alive HTTP/1.1 connections driven by one asyncio loop (threads would
spend the machine on Python rather than on the server)."""

import asyncio
import json
import random
import threading
import time

import pytest

import dtmtest as T

pytestmark = [pytest.mark.owns_server,
              pytest.mark.skipif(bool(T.EXTERNAL_URL), reason="needs its own data dirs")]

CONNECTIONS = 500


async def client(port, n, headers, prefix, state):
    """One connection: POST one record per request, kept alive, until state['stop']."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as e:
        state["errors"].append(f"connect: {e!r}")
        return
    state["connected"].add(n)
    auth = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    i = 0
    try:
        while not state["stop"]:
            tid = f"{prefix}-{n}-{i}"
            i += 1
            body = json.dumps([T.txn(txn_id=tid, amount=str(10 + i % 7))]).encode()
            state["sent"].add(tid)
            writer.write((f"POST /api/v1/ingest/transactions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                          f"{auth}\r\n").encode() + body)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            if status != 200:
                state["errors"].append(f"status {status}")
                continue
            state["acked"].append((time.monotonic(), tid))
            state["served"].add(n)
            if b"connection: close" in head.lower():
                break
    except (OSError, asyncio.IncompleteReadError) as e:
        state["errors"].append(repr(e))
    finally:
        writer.close()


def run_load(port, headers, prefix, state):
    async def main():
        await asyncio.gather(*(client(port, n, headers, prefix, state)
                               for n in range(CONNECTIONS)))
    asyncio.run(main())


def test_backup_under_500_connections(tmp_path, own_server):
    srv = own_server(https=False, start=False)
    # one client address with 500 connections: the per-address and per-system limits are the
    # rate-limit tests' subject, not this one's
    with open(srv.data_dir / "dtm.conf", "a") as f:
        f.write("\n[ratelimit]\nenabled = false\n")
    srv.start(https=False)
    s = srv.add_system()
    prefix = "BL" + T.uid("X")[2:8]
    state = {"stop": False, "sent": set(), "acked": [], "errors": [], "connected": set(),
             "served": set()}
    loader = threading.Thread(target=run_load, args=(srv.http_port, s.headers, prefix, state))
    loader.start()
    try:
        # every one of the 500 connections is open and has been answered before the backup
        assert T.wait_for(lambda: len(state["served"]) == CONNECTIONS, timeout=60), \
            f"{len(state['served'])} connections answered: {state['errors'][:3]}"
        started = time.monotonic()
        out = tmp_path / "under-500.dtmb"
        p = T.run_dtm("backup", "-o", str(out), "--data-dir", str(srv.data_dir), "--json",
                      timeout=300)
        m = json.loads(p.stdout)
        time.sleep(0.3)  # ingest goes on after the snapshot
    finally:
        state["stop"] = True
        loader.join(timeout=120)
    assert not state["errors"], state["errors"][:3]
    before = {tid for (at, tid) in state["acked"] if at < started}
    n_snap = m["datasets"]["transactions"]
    assert len(before) <= n_snap < len(state["sent"])
    assert m["cubes_applied_seq"] <= m["last_receipt_seq"]

    new = tmp_path / "restored"
    p = T.run_dtm("restore", str(out), "--data-dir", str(new), "--master-key",
                  str(srv.data_dir / "master.key"), "--json", timeout=300)
    assert json.loads(p.stdout)["records"] == m["records"]
    srv.stop()
    srv2 = own_server(data_dir=new, https=False)
    # the restored server's numbers: the snapshot's count, from its records and its rollups
    for plan in ("scan", None):
        params = {"metrics": "count,sum:amount"}
        if plan:
            params["plan"] = plan
        st = srv2.get("/api/v1/stats/transactions", headers=s.headers, params=params)
        assert st.status_code == 200, st.text
        assert int(st.json()["rows"][0][0]) == n_snap, (plan, st.text)
    sums = {plan: srv2.get("/api/v1/stats/transactions", headers=s.headers,
                           params={"metrics": "sum:amount", **({"plan": plan} if plan else {})}
                           ).json()["rows"][0][0] for plan in ("scan", None)}
    assert sums["scan"] == sums[None]
    # every record acknowledged before the backup began is there (a sample, read by key)
    for tid in random.Random(7).sample(sorted(before), min(200, len(before))):
        assert srv2.record(s, tid).status_code == 200, tid
    srv2.stop()
