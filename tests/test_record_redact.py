"""Redaction: no secret value reaches a recorded trace; sizes are those of the real objects."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fault_server import FaultServer, kubeconfig, pod
from test_record import caught_up, wait_until

from tracesim.sources.record import Recorder, RecordOptions, Redaction, load_auth
from tracesim.sources.record.redact import LAST_APPLIED, REDACTED, redact
from tracesim.trace import open_trace

SECRET = "c3VwZXJzZWNyZXQtdmFsdWU="  # a distinctive value to search for


def secret() -> dict:
    return {
        "kind": "Secret",
        "apiVersion": "v1",
        "metadata": {
            "name": "db",
            "namespace": "default",
            "annotations": {LAST_APPLIED: json.dumps({"data": {"password": SECRET}})},
        },
        "data": {"password": SECRET},
        "stringData": {"token": SECRET},
        "type": "Opaque",
    }


def configmap() -> dict:
    return {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": "cfg", "namespace": "default"},
        "data": {"settings.ini": f"key={SECRET}"},
        "binaryData": {"blob": SECRET},
    }


def deployment() -> dict:
    container = {"name": "app", "env": [{"name": "API_KEY", "value": SECRET}]}
    init = {"name": "init", "env": [{"name": "X", "value": SECRET}]}
    ref = {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "db", "key": "p"}}}
    return {
        "kind": "CronJob",
        "apiVersion": "batch/v1",
        "metadata": {"name": "nightly", "namespace": "default"},
        "spec": {
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "containers": [container, {"name": "side", "env": [ref]}],
                            "initContainers": [init],
                        }
                    }
                }
            }
        },
    }


def test_secret_values_are_redacted_keys_kept():
    obj = redact(secret(), Redaction())
    assert obj["data"] == {"password": REDACTED}
    assert obj["stringData"] == {"token": REDACTED}
    assert LAST_APPLIED not in obj["metadata"]["annotations"]
    assert obj["metadata"]["annotations"]["tracesim.io/redacted"] == "data,last-applied"
    assert SECRET not in json.dumps(obj)


def test_secrets_are_redacted_even_when_keeping_configmaps_and_env():
    obj = redact(secret(), Redaction(keep_env=True, keep_configmaps=True))
    assert SECRET not in json.dumps(obj)


def test_configmap_values_redacted_unless_kept():
    assert SECRET not in json.dumps(redact(configmap(), Redaction()))
    kept = redact(configmap(), Redaction(keep_configmaps=True))
    assert kept["binaryData"]["blob"] == SECRET and kept["data"]["settings.ini"].endswith(SECRET)


def test_env_values_redacted_in_every_pod_template_names_and_refs_kept():
    obj = redact(deployment(), Redaction())
    spec = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert SECRET not in json.dumps(obj)
    assert spec["containers"][0]["env"] == [{"name": "API_KEY", "value": REDACTED}]
    assert spec["containers"][1]["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "db"
    assert spec["initContainers"][0]["env"][0]["name"] == "X"
    kept = redact(deployment(), Redaction(keep_env=True))
    assert SECRET in json.dumps(kept)


def test_pod_ephemeral_container_env_is_redacted():
    p = pod("p")
    p["spec"]["ephemeralContainers"] = [{"name": "debug", "env": [{"name": "K", "value": SECRET}]}]
    out = redact(p, Redaction())
    assert SECRET not in json.dumps(out) and "hunter2" not in json.dumps(out)
    assert out["metadata"]["annotations"]["tracesim.io/redacted"] == "env"


def test_recorded_trace_holds_no_secret_and_true_sizes(tmp_path):
    srv = FaultServer(bookmark_interval_s=0.1)
    srv.start()
    try:
        srv.apply("secrets", "ADDED", secret())
        srv.apply("configmaps", "ADDED", configmap())
        srv.apply("pods", "ADDED", pod("p0"))
        kc = tmp_path / "kc"
        kc.write_text(kubeconfig(srv.url, token=None))
        opts = RecordOptions(
            resources=("secrets", "configmaps", "pods"), raw_objects=True, flush_interval_s=0.05
        )
        rec = Recorder(load_auth(str(kc)), tmp_path / "t", opts)

        async def main():
            task = asyncio.create_task(rec.run())
            await rec.started.wait()
            await wait_until(lambda: all(s.status == "watching" for s in rec.stats))
            s2 = secret()
            s2["data"]["other"] = SECRET
            srv.apply("secrets", "MODIFIED", s2)  # a watch event too, not only the LIST
            p = pod("p0", node="n1")
            srv.apply("pods", "MODIFIED", p)
            await wait_until(caught_up(rec, srv.rv))
            rec.stop.set()
            await task

        asyncio.run(main())
        sent_sizes = {}
        for plural in ("secrets", "pods"):
            for e in srv.log(plural)[-1:]:
                obj = json.loads(e.line)["object"]
                sent_sizes[obj["metadata"]["name"]] = len(json.dumps(obj, separators=(",", ":")))
    finally:
        srv.stop()
    trace = open_trace(tmp_path / "t")
    for path in (tmp_path / "t").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
            assert b"hunter2" not in path.read_bytes(), path
    df = trace.events(categorical=False)
    assert df.raw.notna().all()
    watched = df[df.event_type == "MODIFIED"].set_index("name")
    for name, size in sent_sizes.items():
        assert watched.loc[name, "size_bytes"] == size  # the unredacted object's size
        assert len(watched.loc[name, "raw"]) != size  # what is stored is the redacted one
    opts_m = trace.manifest["options"]
    assert opts_m["raw_objects"] is True and opts_m["keep_env"] is False
    assert opts_m["redaction"] == {
        "secret_data": True,
        "configmap_data": True,
        "env_values": True,
        "last_applied_configuration": True,
    }
