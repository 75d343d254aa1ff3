"""``tracesim record`` / ``tracesim repair`` on the command line: bad input gives one clear
line and exit 2; a clean run and SIGTERM close the trace with a complete manifest; a
``kill -9`` loses at most about a second and ``repair`` finishes the trace."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fault_server import FaultServer, kubeconfig, node, pod

from tracesim.cli import main
from tracesim.trace import SCHEMA, TraceWriter, open_trace
from tracesim.trace.objects import object_row
from tracesim.trace.repair import repair_trace


def cli(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


@pytest.fixture
def server():
    srv = FaultServer(tokens={"t1"}, bookmark_interval_s=0.2)
    srv.start()
    yield srv
    srv.stop()


def write_kc(tmp_path: Path, url: str, **kw) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig(url, **kw))
    return str(path)


def one_error_line(code: int, err: str) -> str:
    assert code == 2
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


# -- bad input -------------------------------------------------------------------------------
def test_unreachable_server(capsys, tmp_path):
    kc = write_kc(tmp_path, "http://127.0.0.1:1")
    line = one_error_line(
        *cli(capsys, "record", "--kubeconfig", kc, "--out", str(tmp_path / "t"))[::2]
    )
    assert "cannot reach the API server http://127.0.0.1:1" in line
    assert not (tmp_path / "t").exists()


def test_wrong_context(capsys, tmp_path):
    kc = write_kc(tmp_path, "http://127.0.0.1:1")
    code, _, err = cli(capsys, "record", "--kubeconfig", kc, "--context", "prod", "--out", "x")
    line = one_error_line(code, err)
    assert "context 'prod' is not in kubeconfig" in line and "fault" in line


def test_missing_kubeconfig(capsys, tmp_path):
    code, _, err = cli(capsys, "record", "--kubeconfig", str(tmp_path / "nope"), "--out", "x")
    assert "no such file" in one_error_line(code, err)


def test_resource_not_served(capsys, tmp_path, server):
    kc = write_kc(tmp_path, server.url)
    args = ("record", "--kubeconfig", kc, "--resources", "widgets", "-q", "--out", "t")
    line = one_error_line(*cli(capsys, *args)[::2])
    assert "widgets: the server does not serve this resource" in line


def test_forbidden_resource(capsys, tmp_path, server):
    server.forbidden = {"pods"}
    kc = write_kc(tmp_path, server.url)
    out = tmp_path / "t"
    args = ("record", "--kubeconfig", kc, "--resources", "pods", "-q", "--out", str(out))
    code, _, err = cli(capsys, *args)
    assert code == 2 and "error: pods: 403 Forbidden" in err and "Traceback" not in err
    assert json.loads((out / "manifest.json").read_text())["status"] == "aborted"


def test_bad_token_is_one_line_without_the_token(capsys, tmp_path, server):
    kc = write_kc(tmp_path, server.url, token="tok-WRONG-1234567890")
    code, _, err = cli(capsys, "record", "--kubeconfig", kc, "--out", str(tmp_path / "t"))
    line = one_error_line(code, err)
    assert "401 Unauthorized" in line and "tok-WRONG" not in err


def test_bad_duration(capsys, tmp_path, server):
    kc = write_kc(tmp_path, server.url)
    code, _, err = cli(capsys, "record", "--kubeconfig", kc, "--duration", "soon", "--out", "t")
    assert "not a duration" in one_error_line(code, err)


# -- clean runs ------------------------------------------------------------------------------
def test_duration_run_and_one_failing_resource(capsys, tmp_path, server):
    server.forbidden = {"leases"}
    server.apply("nodes", "ADDED", node("n1"))
    server.apply("pods", "ADDED", pod("p0", node="n1"))
    kc = write_kc(tmp_path, server.url)
    out = tmp_path / "t"
    args = ["record", "--kubeconfig", kc, "--duration", "1s", "--out", str(out)]
    code, _, err = cli(capsys, *args, "--resources", "pods,nodes,leases", "-q")
    assert code == 0, err
    assert "warning: leases: 403 Forbidden" in err
    trace = open_trace(out)
    assert trace.complete and trace.count() == 2
    res = trace.manifest["source"]["resources"]
    assert res["pods"]["events"] == 1 and res["leases"]["status"] == "failed"
    assert not (out / ".recorder.lock").exists()


def recorder_cmd(kc: str) -> list[str]:
    """The recorder as a subprocess (the caller adds --out and the rest)."""
    return [sys.executable, "-m", "tracesim", "record", "--kubeconfig", kc, "-q"]


@pytest.mark.slow
def test_sigterm_closes_with_a_complete_manifest(tmp_path, server):
    server.apply("pods", "ADDED", pod("p0"))
    kc = write_kc(tmp_path, server.url)
    out = tmp_path / "t"
    proc = subprocess.Popen([*recorder_cmd(kc), "--out", str(out)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not list((out / "events").glob("*.journal")):
        time.sleep(0.05)
    for i in range(50):
        server.apply("pods", "ADDED", pod(f"q{i}"))
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    trace = open_trace(out)
    assert trace.complete and not trace.journals
    assert trace.count() == 51
    assert trace.manifest["source"]["resources"]["pods"]["events"] == 51


@pytest.mark.slow
def test_kill_9_loses_at_most_a_second_and_repair_finishes(tmp_path, server):
    for i in range(20):
        server.apply("nodes", "ADDED", node(f"n{i}"))
    kc = write_kc(tmp_path, server.url)
    out = tmp_path / "t"
    proc = subprocess.Popen(
        [*recorder_cmd(kc), "--resources", "pods,nodes", "--out", str(out)],
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not list((out / "events").glob("*.journal")):
            time.sleep(0.05)
        # steady load: 2,000 pod events per second for 3 seconds, then kill -9 mid-stream
        t_end = time.monotonic() + 3.0
        i = 0
        while time.monotonic() < t_end:
            for _ in range(20):
                server.apply("pods", "ADDED", pod(f"load-{i}"))
                i += 1
            time.sleep(0.01)
        killed_at = time.time()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    trace = open_trace(out)  # opens: the journal is read as far as its last complete batch
    assert not trace.complete and trace.journals
    got = trace.events(kinds=["Pod"], categorical=False)
    sent = server.log("pods")
    assert len(got) > 0
    rvs = [int(rv) for rv in got.resource_version]
    assert rvs == [e.rv for e in sent[: len(rvs)]]  # a prefix: no loss inside, no duplicate
    lost = sent[len(rvs) :]
    if lost:
        assert killed_at - lost[0].t <= 1.0, f"lost {killed_at - lost[0].t:.2f} s of events"
    assert trace.count(kinds=["Node"]) == 20
    before = trace.count()
    report = repair_trace(out)
    assert report["rows_recovered"] == before and report["changed"]
    repaired = open_trace(out)
    assert repaired.complete and not repaired.journals
    assert repaired.count() == before
    assert repaired.manifest["events"]["rows"] == before
    assert repaired.manifest["kinds"]["Pod"]["rows"] == len(got)
    assert repaired.manifest["repair"]["previous_status"] == "open"


# -- repair ----------------------------------------------------------------------------------
def crashed_trace(path: Path, n: int = 30) -> TraceWriter:
    w = TraceWriter(path, "recorded", journal=True)
    rows = [object_row(pod(f"p{i}"), "ADDED", 1_700_000_000_000_000 + i) for i in range(n)]
    w.write_rows(rows[: n // 2])
    w.flush()
    w.write_rows(rows[n // 2 :])
    w.flush()
    return w  # never closed: as after kill -9


def test_repair_converts_a_journal_with_a_torn_tail(capsys, tmp_path):
    w = crashed_trace(tmp_path / "t")
    journal = next((tmp_path / "t" / "events").glob("*.journal"))
    with open(journal, "ab") as fh:  # the writer died in the middle of a batch
        fh.write(b"\xff\xff\xff\xff\x10\x00\x00\x00garbage")
    w._journal_file.close()
    before = open_trace(tmp_path / "t").to_arrow()
    assert before.num_rows == 30  # reading does not modify
    assert journal.exists()
    code, out, _ = cli(capsys, "repair", str(tmp_path / "t"))
    assert code == 0 and "30 rows recovered" in out
    trace = open_trace(tmp_path / "t")
    assert trace.complete and not trace.journals and len(trace.parts) == 1
    assert trace.to_arrow().equals(before)
    assert trace.manifest["kinds"]["Pod"]["event_types"] == {"ADDED": 30}
    assert trace.manifest["time_span"]["duration_s"] == pytest.approx(29e-6)
    code, out, _ = cli(capsys, "repair", str(tmp_path / "t"))
    assert code == 0 and "nothing to repair" in out


def test_repair_drops_a_journal_already_converted(tmp_path):
    w = TraceWriter(tmp_path / "t", "recorded", journal=True)
    w.write_rows([object_row(pod("p"), "ADDED", 1_700_000_000_000_000)])
    w.close()
    part = next((tmp_path / "t" / "events").glob("*.parquet"))
    journal = part.with_suffix(".journal")
    with pa.OSFile(str(journal), "wb") as sink, pa.ipc.new_stream(sink, SCHEMA) as s:
        s.write_table(open_trace(tmp_path / "t").to_arrow())
    report = repair_trace(tmp_path / "t")
    assert report["removed"] == [journal.name] and not journal.exists()
    assert open_trace(tmp_path / "t").count() == 1


def test_repair_refuses_a_trace_being_recorded(capsys, tmp_path):
    import fcntl

    w = crashed_trace(tmp_path / "t")
    fd = os.open(tmp_path / "t" / ".recorder.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        code, _, err = cli(capsys, "repair", str(tmp_path / "t"))
        assert "a recorder is still writing" in one_error_line(code, err)
    finally:
        os.close(fd)
    w._journal_file.close()
    assert repair_trace(tmp_path / "t")["rows_recovered"] == 30


def test_repair_of_a_non_trace(capsys, tmp_path):
    code, _, err = cli(capsys, "repair", str(tmp_path))
    assert "not a tracesim trace" in one_error_line(code, err)


# -- TLS -------------------------------------------------------------------------------------
@pytest.fixture
def tls_server(tmp_path):
    import shutil
    import ssl

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    args = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key)]
    args += ["-out", str(cert), "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(
        ["openssl", *args],
        check=True,
        capture_output=True,
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    srv = FaultServer(tokens={"t1"}, bookmark_interval_s=0.2)
    srv.start(ssl_context=ctx)
    srv.apply("pods", "ADDED", pod("p0"))
    yield srv, cert
    srv.stop()


def test_tls_is_verified_by_default(capsys, tmp_path, tls_server):
    srv, _ = tls_server
    kc = write_kc(tmp_path, srv.url)
    code, _, err = cli(capsys, "record", "--kubeconfig", kc, "-q", "--out", str(tmp_path / "t"))
    line = one_error_line(code, err)
    assert "cannot reach the API server https://127.0.0.1" in line and "certif" in line.lower()


@pytest.mark.parametrize("how", ["ca", "insecure"])
def test_tls_with_the_cluster_ca_or_explicitly_insecure(capsys, tmp_path, tls_server, how):
    srv, cert = tls_server
    extra = {"ca_file": str(cert)} if how == "ca" else {"insecure": True}
    kc = write_kc(tmp_path, srv.url, **extra)
    out = tmp_path / "t"
    args = ("record", "--kubeconfig", kc, "-q", "--duration", "0.5s", "--resources", "pods")
    code, _, err = cli(capsys, *args, "--out", str(out))
    assert code == 0, err
    assert open_trace(out).count() == 1
