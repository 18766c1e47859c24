"""The state pool end to end: more sessions than state slots, idle states moved to host memory
and spill files, every session continuing exactly as on a server with a slot for each."""
import os
import tempfile
import urllib.request

from conftest import RunningServer, metric_value
from sympow.v1 import sympow_pb2 as pb
from sympow_client import SympowClient

PROMPTS = ["In the beginning", "A fool and his money", "dog: a member of", "The LORD is my",
           "Never put off until tomorrow"]
GREEDY = dict(temperature=0.0, ignore_eos=True, max_new_tokens=6)


def converse(address):
    """Two turns on each of five sessions, the sessions taking turns; the texts, in order."""
    texts = []
    with SympowClient(address, timeout_s=120) as client:
        sessions = [client.create_session().session_id for _ in PROMPTS]
        for turn in (0, 1):
            for session, prompt in zip(sessions, PROMPTS):
                texts.append(client.complete(prompt if turn == 0 else " and", session_id=session, **GREEDY).text)
        locations = [client.get_session(s).location for s in sessions]
        info = client.model_info()
    return texts, locations, info


def test_sessions_beyond_the_state_slots_continue_exactly():
    # sympow-tiny, fp32: (S, z) and a 64-token decode buffer per layer and head
    state_bytes = 4 * 4 * (2080 * 64 + 2080) * 4 + 4 * 4 * (4 + 64 * (1 + 2 * 64)) * 4
    with tempfile.TemporaryDirectory() as state_dir:
        tiered = RunningServer("--state_slots", "2", "--host_state_bytes", str(state_bytes),
                               "--spill_dir", os.path.join(state_dir, "spill"))
        try:
            texts, locations, info = converse(tiered.address)
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{tiered.metrics_port}/metrics", timeout=10).read().decode()
            assert "2 state slots" in tiered.output()
        finally:
            assert tiered.stop() == 0, tiered.output()
        assert os.listdir(os.path.join(state_dir, "spill")) == []  # spill files go with the process
    reference = RunningServer()
    try:
        expected, _, _ = converse(reference.address)
    finally:
        reference.stop()
    assert texts == expected
    assert (info.state_slots, info.host_state_sessions, info.disk_tier) == (2, 1, True)
    assert sorted(locations).count(pb.STATE_LOCATION_DEVICE) == 2
    assert pb.STATE_LOCATION_HOST in locations and pb.STATE_LOCATION_DISK in locations
    assert metric_value(metrics, "sympow:sessions", 'location="disk"') >= 1
    assert metric_value(metrics, "sympow:sessions", 'location="device"') == 2
    assert metric_value(metrics, "sympow:state_slots_total") == 2
    assert metric_value(metrics, "sympow:host_state_bytes", 'kind="capacity"') == state_bytes
    assert metric_value(metrics, "sympow:host_state_bytes", 'kind="used"') == state_bytes


def test_without_host_or_disk_tiers_a_full_pool_is_resource_exhausted():
    running = RunningServer("--state_slots", "1")
    try:
        with SympowClient(running.address, timeout_s=60) as client:
            client.create_session()
            try:
                client.create_session()
                raise AssertionError("a second session fitted in one slot")
            except Exception as error:  # grpc.RpcError
                assert error.code().name == "RESOURCE_EXHAUSTED", error
                assert "no host or disk tier" in error.details()
    finally:
        running.stop()
