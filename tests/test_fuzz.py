"""Property tests: no input crashes ingest or the log reader; every bad input gets a reason.

Random bytes, random JSON and mutated valid payloads of the simulator (the mutators
of ``benchmarks/fuzz_input.py``, driven by hypothesis) go through
:meth:`Ingestor.ingest`; corrupted logs through :func:`read_log`.  The seeded
volume run (10,000 messages, 120 logs) is ``benchmarks/fuzz_input.py``.
"""

import json
import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.fuzz_input import corrupt_log, mutate_payload, random_json
from fusion.logio import LogError, LogReport, read_log
from fusion.simulate import simulate
from sensors.batch import Scan
from sensors.ingest import Ingestor, Rejection

PREFIX = "borderfusion/v1"
FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def valid(tmp_path_factory, demo_site):
    """A short simulated log of the demo site and its records (all three sensor kinds)."""
    log = tmp_path_factory.mktemp("fuzz") / "valid.jsonl.gz"
    simulate(demo_site, 40.0, log, None, seed=2, n_targets=3)
    return log, list(read_log(log, strict=True))


@pytest.fixture(scope="module")
def ingestor(demo_site):
    return Ingestor(list(demo_site.sensors), demo_site.frame, PREFIX, demo_site.ingest_limits)


def check_outcome(result, payload: bytes) -> None:
    """A Scan, or a Rejection whose reason a person can act on; never ingest's last-resort guard."""
    assert isinstance(result, (Scan, Rejection)), result
    if isinstance(result, Rejection):
        assert result.reason and len(result.reason) < 600, result.reason
        assert not result.reason.startswith("could not be processed ("), (result.reason, payload[:200])
        assert not re.search(r"got `[^`]*`, got ", result.reason), result.reason  # what arrived is said once
        assert result.payload == payload[:4096].decode("utf-8", errors="replace")


topics = st.sampled_from([f"{PREFIX}/raw/radar/radar-n1", f"{PREFIX}/raw/ground/ugs-011", f"{PREFIX}/raw/drone/uav-3"])


@FUZZ
@given(payload=st.binary(max_size=2000), topic=topics)
def test_random_bytes_are_rejected_with_a_reason(ingestor, payload, topic):
    result = ingestor.ingest(1795000000.0, topic, payload)
    check_outcome(result, payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30)


@FUZZ
@given(document=json_values | st.randoms(use_true_random=False).map(random_json), topic=topics)
def test_random_json_is_rejected_with_a_reason(ingestor, document, topic):
    payload = json.dumps(document, allow_nan=True).encode("utf-8", "surrogatepass")
    check_outcome(ingestor.ingest(1795000000.0, topic, payload), payload)


@FUZZ
@given(rng=st.randoms(use_true_random=False), pick=st.integers(min_value=0))
def test_mutated_valid_payloads_never_crash_and_bad_ones_say_why(ingestor, valid, rng, pick):
    record = valid[1][pick % len(valid[1])]
    _, payload = mutate_payload(rng, record.payload)
    result = ingestor.ingest(record.t_rx, record.topic, payload)
    check_outcome(result, payload)
    if isinstance(result, Scan):  # what passes is finite, whatever was done to the bytes
        assert all(math.isfinite(v) for v in (result.time, *result.position.ravel(), *result.covariance.ravel()))


@FUZZ
@given(rng=st.randoms(use_true_random=False), gz=st.booleans(), strict=st.booleans())
def test_corrupt_logs_give_records_or_a_clean_error(tmp_path_factory, valid, rng, gz, strict):
    import gzip

    data = valid[0].read_bytes()
    name, corrupted = corrupt_log(rng, data if gz else gzip.decompress(data), gz)
    path = tmp_path_factory.mktemp("corrupt") / ("log.jsonl.gz" if gz else "log.jsonl")
    path.write_bytes(corrupted)
    report = LogReport(str(path))
    try:
        records = list(read_log(path, strict=strict, report=report))
    except LogError as error:
        assert str(path) in str(error)
        return
    assert report.records == len(records) and report.skipped_lines <= report.lines
    assert all(isinstance(r.payload, bytes) and math.isfinite(r.t_rx) for r in records)
    for problem in report.problems + ([report.truncated] if report.truncated else []):
        assert problem.startswith(f"{path}:"), problem  # file and line named


@FUZZ
@given(content=st.binary(max_size=3000))
def test_random_bytes_as_a_log(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("random") / "log.jsonl"
    path.write_bytes(content)
    try:
        list(read_log(path))
    except LogError as error:  # only a wrong header stops a lenient read
        assert "format is" in str(error) or "log version" in str(error)


@pytest.mark.broker
def test_record_keeps_running_through_hostile_payloads_and_replay_rejects_them(tmp_path, live_site):
    """``record`` against a real Mosquitto: payloads msgspec cannot decode are kept as strings."""
    import signal
    import subprocess
    import sys
    import time

    import paho.mqtt.client as mqtt

    from fusion.config import load_site
    from fusion.pipeline import Outputs
    from fusion.replay import replay_file

    site = load_site(live_site)
    recorded = tmp_path / "recorded.jsonl"
    hostile = [b'{"sensor_id":"radar-n1\xff","t":1795000000.0,"seq":1,"plots":[]}',
               b'{"sensor_id":"radar-n1","t":1795000000.0,"seq":2,"plots":[],"x":' + b"[" * 1100 + b"]" * 1100 + b"}",
               b"\xff\xfe\x00 binary"]
    recorder = subprocess.Popen([sys.executable, "-m", "fusion.cli", "record", "--config", str(live_site),
                                 "--out", str(recorded)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert recorder.stdout.readline().startswith("recording ")  # subscribed
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fuzz-publisher", protocol=mqtt.MQTTv5)
        client.connect("127.0.0.1", site.config.mqtt.port)
        client.loop_start()
        for payload in hostile:
            client.publish(f"{PREFIX}/raw/radar/radar-n1", payload, qos=1).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()
        time.sleep(1.0)  # let the broker deliver them to the recorder
        assert recorder.poll() is None, recorder.stderr.read()  # still running
        recorder.send_signal(signal.SIGTERM)
        out, err = recorder.communicate(timeout=30)
    finally:
        if recorder.poll() is None:
            recorder.kill()
    assert recorder.returncode == 0 and "Traceback" not in err, err
    assert f"recorded {len(hostile)} messages" in out
    records = list(read_log(recorded, strict=True))
    assert [r.payload for r in records] == [p.decode("utf-8", errors="replace").encode() for p in hostile]
    got = Outputs()
    replay_file(site, recorded, keep=got, progress=False, strict=True)
    assert len(got.rejected) == len(hostile) and all(r.reason for r in got.rejected)
