"""nginx (deploy/nginx) in front of three sympow-server replicas: every call of a session reaches
the replica that holds it, by the x-sympow-session metadata the clients send."""
import os
import signal
import shutil
import subprocess
import tempfile
import time
import urllib.request

import grpc
import pytest

from conftest import RunningServer, free_port, metric_value
from sympow.v1 import sympow_pb2 as pb
from sympow_client import SympowClient

TEMPLATE = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "nginx", "sympow.conf.template")


class RunningNginx:
    def __init__(self, replicas):
        self.prefix = tempfile.mkdtemp(prefix="sympow-nginx-")
        self.port = free_port()
        with open(TEMPLATE) as f:
            conf = f.read()
        conf = (conf.replace("@LISTEN@", f"127.0.0.1:{self.port}").replace("@PREFIX@", self.prefix)
                .replace("@REPLICAS@", "\n    ".join(f"server {r.address};" for r in replicas)))
        path = os.path.join(self.prefix, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.process = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-p", self.prefix, "-c", path,
                                         "-g", "daemon off;"], stderr=subprocess.PIPE)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with SympowClient(f"127.0.0.1:{self.port}", timeout_s=5) as client:
                    client.model_info()
                return
            except grpc.RpcError:
                time.sleep(0.1)
        raise RuntimeError("nginx did not start: " + self.process.stderr.read().decode())

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)
        shutil.rmtree(self.prefix, ignore_errors=True)


def sessions_on(replica):
    text = urllib.request.urlopen(f"http://127.0.0.1:{replica.metrics_port}/metrics", timeout=10).read().decode()
    return metric_value(text, "sympow:sessions", 'location="device"')


def test_each_session_is_served_by_one_replica_through_nginx():
    replicas = [RunningServer("--max_sessions", "64") for _ in range(3)]
    nginx = RunningNginx(replicas)
    try:
        ids = [f"user-{i}" for i in range(50)]
        with SympowClient(nginx.address, timeout_s=120) as client:
            for session_id in ids:
                assert client.create_session(session_id=session_id).session_id == session_id
            for turn in range(3):
                for session_id in ids:
                    result = client.complete(" and", session_id=session_id, max_new_tokens=2, ignore_eos=True)
                    assert result.session_tokens == 3 * (turn + 1)
        counts = [sessions_on(r) for r in replicas]
        assert sum(counts) == 50 and all(count > 0 for count in counts), counts
        # Each session lives on exactly one replica: asked directly, the others do not know it.
        for session_id in ids[:10]:
            assert holders(replicas, session_id) == 1
    finally:
        nginx.stop()
        for replica in replicas:
            replica.stop()


def test_a_client_chosen_session_id_is_checked():
    running = RunningServer()
    try:
        with SympowClient(running.address, timeout_s=30) as client:
            client.create_session(session_id="taken")
            for bad, code in (("taken", grpc.StatusCode.ALREADY_EXISTS), ("../etc", grpc.StatusCode.INVALID_ARGUMENT),
                              ("x" * 65, grpc.StatusCode.INVALID_ARGUMENT)):
                with pytest.raises(grpc.RpcError) as error:
                    client.create_session(session_id=bad)
                assert error.value.code() == code
                assert "session_id" in error.value.details()
    finally:
        running.stop()


def complete_with_retry(client, session_id, deadline_s=30):
    """One turn, retried while the session changes hands (UNAVAILABLE carries a retry hint)."""
    deadline = time.time() + deadline_s
    while True:
        try:
            return client.complete(" and", session_id=session_id, max_new_tokens=2, ignore_eos=True)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or time.time() > deadline:
                raise
            time.sleep(0.25)


def stream_with_retry(client, session_id):
    """A long Generate through nginx, returned once its first token arrived."""
    deadline = time.time() + 60
    while True:
        stream = client.stub.Generate(
            pb.GenerateRequest(input=pb.Input(text="The"), session_id=session_id, max_new_tokens=4000,
                               ignore_eos=True), metadata=(("x-sympow-session", session_id),))
        try:
            next(stream)
            return stream
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or time.time() > deadline:
                raise
            time.sleep(0.25)


def holders(replicas, session_id):
    count = 0
    for replica in replicas:
        with SympowClient(replica.address, timeout_s=30) as direct:
            try:
                direct.get_session(session_id)
                count += 1
            except grpc.RpcError as error:
                assert error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND)
    return count


def test_a_killed_replicas_sessions_continue_through_nginx_on_the_others():
    with tempfile.TemporaryDirectory() as state_dir:
        def start(i):
            return RunningServer("--state_dir", state_dir, "--replica_id", f"r{i}", "--lease_ttl_s", "1")
        replicas = [start(i) for i in range(3)]
        nginx = RunningNginx(replicas)
        try:
            ids = [f"chat-{i}" for i in range(12)]
            tokens = {}
            with SympowClient(nginx.address, timeout_s=60) as client:
                for session_id in ids:
                    client.create_session(session_id=session_id)
                    tokens[session_id] = complete_with_retry(client, session_id).session_tokens
                # The victim is whichever replica serves this stream (idle sessions may have moved).
                streaming = ids[0]
                stream = stream_with_retry(client, streaming)
                victim = next(i for i in range(3) if holders([replicas[i]], streaming) == 1)
                replicas[victim].stop(signal.SIGKILL)  # mid-stream
                with pytest.raises(grpc.RpcError):
                    list(stream)
                # None lost: each goes on from its last snapshot (the interrupted call never completed).
                for session_id in ids:
                    result = complete_with_retry(client, session_id)
                    assert result.session_tokens == tokens[session_id] + 3
                    tokens[session_id] = result.session_tokens
                live = [r for i, r in enumerate(replicas) if i != victim]
                for session_id in ids:
                    assert holders(live, session_id) == 1
                replicas[victim] = start(victim)  # rejoins under its old name
                for session_id in ids:
                    result = complete_with_retry(client, session_id)
                    assert result.session_tokens == tokens[session_id] + 3
                for session_id in ids:
                    assert holders(replicas, session_id) <= 1
        finally:
            nginx.stop()
            for replica in replicas:
                replica.stop()
