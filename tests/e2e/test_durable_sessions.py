"""--state_dir: sessions survive kill -9 as of their last completed call; bad snapshots are skipped."""
import os
import shutil
import signal
import time

import grpc
import pytest

from conftest import RunningServer
from sympow.v1 import sympow_pb2 as pb
from sympow_client import SympowClient

GREEDY = dict(temperature=0.0, ignore_eos=True)


def test_sessions_survive_kill_9_and_bad_snapshots_are_skipped(tmp_path):
    state_dir = str(tmp_path / "state")
    first = RunningServer("--state_dir", state_dir)
    with SympowClient(first.address, timeout_s=60) as client:
        a = client.create_session(system_prompt="In the beginning")
        done = client.complete(" God", session_id=a.session_id, max_new_tokens=6, **GREEDY)
        b = client.fork_session(a.session_id)
        doomed = client.create_session(system_prompt="to be deleted")
        client.delete_session(doomed.session_id)
        stream = client.stub.Generate(pb.GenerateRequest(input=pb.Input(text=" and"), session_id=a.session_id,
                                                         max_new_tokens=4000, ignore_eos=True))
        next(stream)
        first.process.send_signal(signal.SIGKILL)  # mid-stream: that call never completes
        first.process.wait(timeout=10)
        with pytest.raises(grpc.RpcError):
            list(stream)
    snapshots = sorted(os.listdir(state_dir))
    assert snapshots == sorted([a.session_id + ".snapshot", b.session_id + ".snapshot"])
    with open(os.path.join(state_dir, "s-garbage.snapshot"), "wb") as f:
        f.write(b"not a snapshot at all")
    with open(os.path.join(state_dir, b.session_id + ".snapshot"), "rb") as f:
        whole = f.read()
    with open(os.path.join(state_dir, "s-truncated.snapshot"), "wb") as f:
        f.write(whole[: len(whole) // 2])

    second = RunningServer("--state_dir", state_dir)
    try:
        log = second.output()
        assert "restored 2 sessions" in log
        assert "s-garbage.snapshot: not a sympow snapshot" in log
        assert "s-truncated.snapshot" in log and "truncated" in log
        with SympowClient(second.address, timeout_s=60) as client:
            listed = {s.session_id: s for s in client.list_sessions()}
            assert set(listed) == {a.session_id, b.session_id}
            assert listed[a.session_id].token_count == done.session_tokens  # as of its last completed call
            assert listed[b.session_id].token_count == done.session_tokens
            after_a = client.complete(" more", session_id=a.session_id, max_new_tokens=6, **GREEDY)
            after_b = client.complete(" more", session_id=b.session_id, max_new_tokens=6, **GREEDY)
            assert after_a.token_ids == after_b.token_ids
            client.delete_session(b.session_id)
            assert not os.path.exists(os.path.join(state_dir, b.session_id + ".snapshot"))
    finally:
        assert second.stop() == 0


def test_snapshot_from_another_model_is_refused(tmp_path):
    state_dir = tmp_path / "state"
    server = RunningServer("--state_dir", str(state_dir))
    with SympowClient(server.address) as client:
        session = client.create_session(system_prompt="text")
    assert server.stop() == 0
    path = state_dir / (session.session_id + ".snapshot")
    data = bytearray(path.read_bytes())
    start = data.index(b'"model_fingerprint":"') + len(b'"model_fingerprint":"')
    data[start:start + 4] = b"dead"
    path.write_bytes(bytes(data))
    again = RunningServer("--state_dir", str(state_dir))
    try:
        assert "not this one" in again.output()
        with SympowClient(again.address) as client:
            assert client.list_sessions() == []
    finally:
        assert again.stop() == 0
