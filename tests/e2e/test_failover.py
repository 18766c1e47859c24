"""Replicas sharing a snapshot directory: one serves a session at a time under a lease; when it is
killed (-9), another takes the session over from its last snapshot once the lease expires."""
import os
import shutil
import signal
import tempfile
import time

import grpc
import pytest

from conftest import RunningServer
from sympow_client import SympowClient

TTL = "1"


def replica(state_dir, name):
    return RunningServer("--state_dir", state_dir, "--replica_id", name, "--lease_ttl_s", TTL)


def test_a_killed_replicas_sessions_are_taken_over_from_their_snapshots():
    with tempfile.TemporaryDirectory() as state_dir:
        a, b = replica(state_dir, "a"), replica(state_dir, "b")
        try:
            with SympowClient(a.address, timeout_s=60) as on_a:
                on_a.create_session("In the beginning", session_id="chat-1")
                held = on_a.complete(" God", session_id="chat-1", max_new_tokens=4, ignore_eos=True).session_tokens
            with SympowClient(b.address, timeout_s=60) as on_b:
                # While a holds the lease, b refuses, naming the owner.
                with pytest.raises(grpc.RpcError) as busy:
                    on_b.get_session("chat-1")
                assert busy.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "replica 'a'" in busy.value.details() and "retry" in busy.value.details()
                a.stop(signal.SIGKILL)
                time.sleep(float(TTL) + 0.5)
                # The lease expired: b takes over, and the session goes on from a's snapshot.
                assert on_b.get_session("chat-1").token_count == held
                result = on_b.complete(" and", session_id="chat-1", max_new_tokens=2, ignore_eos=True)
                assert result.session_tokens == held + 1 + 2
            # a comes back: b keeps the session while it uses it, and lets it go once idle
            # (3 lease lifetimes), so a can take it back.
            a = replica(state_dir, "a")
            with SympowClient(a.address, timeout_s=60) as on_a:
                with pytest.raises(grpc.RpcError) as owned:
                    on_a.get_session("chat-1")
                assert owned.value.code() == grpc.StatusCode.UNAVAILABLE
                assert "replica 'b'" in owned.value.details()
                time.sleep(3 * float(TTL) + 1)
                assert on_a.get_session("chat-1").token_count == held + 1 + 2
                with pytest.raises(grpc.RpcError) as missing:
                    on_a.get_session("no-such-session")
                assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        finally:
            a.stop()
            b.stop()


def test_replica_id_needs_a_state_dir():
    with pytest.raises(RuntimeError) as error:
        RunningServer("--replica_id", "a")
    assert "--replica_id needs --state_dir" in str(error.value)


def test_an_unusable_snapshot_directory_makes_the_replica_not_serving():
    def health(address):
        check = grpc.insecure_channel(address).unary_unary("/grpc.health.v1.Health/Check")
        return check(b"", timeout=10)

    def wait_for(address, status, seconds=10):
        deadline = time.time() + seconds
        while health(address) != status:
            assert time.time() < deadline, f"health never became {status!r}"
            time.sleep(0.2)

    with tempfile.TemporaryDirectory() as parent:
        state_dir = os.path.join(parent, "shared")
        running = replica(state_dir, "a")
        try:
            wait_for(running.address, b"\x08\x01")  # SERVING
            shutil.rmtree(state_dir)
            wait_for(running.address, b"\x08\x02")  # NOT_SERVING
            os.makedirs(state_dir)
            wait_for(running.address, b"\x08\x01")
        finally:
            running.stop()
