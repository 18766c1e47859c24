"""sympow-server end to end: a real server on loopback, real gRPC clients, real /metrics scrapes."""
import concurrent.futures
import os
import re
import subprocess
import time
import urllib.request

import grpc
import pytest

from conftest import BUILD, MODEL, RunningServer, metric_value
from sympow.v1 import sympow_pb2 as pb
from sympow_client import GenerationResult, SympowClient

GREEDY = dict(temperature=0.0, ignore_eos=True)


@pytest.fixture
def client(server):
    with SympowClient(server.address, timeout_s=120) as c:
        yield c


def test_health_reports_serving(server):
    channel = grpc.insecure_channel(server.address)
    check = channel.unary_unary("/grpc.health.v1.Health/Check")
    assert check(b"", timeout=10) == b"\x08\x01"  # HealthCheckResponse{status: SERVING}


def test_reflection_lists_the_services(server):
    channel = grpc.insecure_channel(server.address)
    reflect = channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
    # ServerReflectionRequest{list_services: ""} is field 7, an empty string.
    replies = list(reflect(iter([b"\x3a\x00"]), timeout=10))
    assert b"sympow.v1.Sympow" in replies[0] and b"grpc.health.v1.Health" in replies[0]


def test_streaming_matches_local_generation_with_the_same_seed(client):
    prompt = "And God said"
    streamed = "".join(client.generate(prompt, max_new_tokens=24, seed=9, temperature=0.8, top_p=0.95,
                                       ignore_eos=True))
    local = subprocess.run([os.path.join(BUILD, "clients", "cli", "sympow-cli"), "generate", "--model", MODEL,
                            "--prompt", prompt, "--max_new_tokens", "24", "--seed", "9", "--temperature", "0.8",
                            "--top_p", "0.95", "--ignore_eos"], capture_output=True, text=True, check=True).stdout
    assert prompt + streamed + "\n" == local


def test_continuing_a_session_equals_one_shot_generation(client):
    session = client.create_session()
    first = client.complete([5, 6, 7, 8], session_id=session.session_id, max_new_tokens=6, **GREEDY)
    second = client.complete([9, 10], session_id=session.session_id, max_new_tokens=6, **GREEDY)
    one_shot = client.complete([5, 6, 7, 8] + first.token_ids + [9, 10], max_new_tokens=6, **GREEDY)
    assert second.token_ids == one_shot.token_ids
    assert second.session_tokens == 4 + 6 + 2 + 6
    assert client.get_session(session.session_id).token_count == 18


def test_forks_are_independent(client):
    session = client.create_session(system_prompt="In the beginning")
    fork = client.fork_session(session.session_id)
    assert fork.token_count == session.token_count > 0
    a = client.complete(" God", session_id=session.session_id, max_new_tokens=5, **GREEDY)
    b = client.complete(" God", session_id=fork.session_id, max_new_tokens=5, **GREEDY)
    assert a.token_ids == b.token_ids  # same state, same input
    client.complete(" and more", session_id=fork.session_id, max_new_tokens=3, **GREEDY)
    assert client.get_session(session.session_id).token_count == session.token_count + 1 + 5
    assert client.get_session(fork.session_id).token_count > client.get_session(session.session_id).token_count


def test_cancel_mid_stream_then_continue(client):
    session = client.create_session()
    stream = client.stub.Generate(pb.GenerateRequest(input=pb.Input(text="The"), session_id=session.session_id,
                                                     max_new_tokens=400, ignore_eos=True))
    received = 0
    for response in stream:
        received += len(response.delta.tokens)
        if received >= 3:
            stream.cancel()
            break
    deadline = time.time() + 10
    while client.get_session(session.session_id).busy and time.time() < deadline:
        time.sleep(0.05)
    held = client.get_session(session.session_id)
    assert not held.busy
    assert held.token_count >= 1 + received  # every streamed token was committed first
    after = client.complete(" more", session_id=session.session_id, max_new_tokens=4, **GREEDY)
    assert after.session_tokens == held.token_count + after.prompt_tokens + 4


def test_deadline_exceeded_leaves_the_session_usable(client):
    session = client.create_session()
    with pytest.raises(grpc.RpcError) as error:
        client.complete("The", session_id=session.session_id, max_new_tokens=4000, ignore_eos=True, timeout_s=0.3)
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    deadline = time.time() + 10
    while client.get_session(session.session_id).busy and time.time() < deadline:
        time.sleep(0.05)
    assert client.complete(" end", session_id=session.session_id, max_new_tokens=2, **GREEDY).generated_tokens == 2


def test_a_client_that_disconnects_leaves_the_session_usable(server, client):
    session = client.create_session()
    script = (f"import sys; sys.path[:0] = {[os.path.join(BUILD, 'python')]!r}\n"
              "import grpc\nfrom sympow.v1 import sympow_pb2 as pb, sympow_pb2_grpc as rpc\n"
              f"stub = rpc.SympowStub(grpc.insecure_channel('{server.address}'))\n"
              f"stream = stub.Generate(pb.GenerateRequest(input=pb.Input(text='The'), session_id='{session.session_id}',"
              " max_new_tokens=4000, ignore_eos=True))\n"
              "next(stream); print('streaming', flush=True)\n"
              "import time; time.sleep(60)\n")
    other = subprocess.Popen(["/usr/bin/python3", "-c", script], stdout=subprocess.PIPE, text=True)
    assert other.stdout.readline().strip() == "streaming"
    other.kill()
    other.wait()
    deadline = time.time() + 10
    while client.get_session(session.session_id).busy and time.time() < deadline:
        time.sleep(0.05)
    held = client.get_session(session.session_id)
    assert not held.busy and held.token_count > 1
    assert client.complete(" x", session_id=session.session_id, max_new_tokens=2, **GREEDY).generated_tokens == 2


def test_32_concurrent_streams_each_equal_their_result_alone(client):
    prompts = [f"Verse {i}: the" for i in range(32)]

    def run(i):
        return client.complete(prompts[i], max_new_tokens=12, seed=100 + i, temperature=0.9, ignore_eos=True).text

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        together = list(pool.map(run, range(32)))
    alone = [run(i) for i in range(32)]
    assert together == alone


def test_two_calls_on_one_session_conflict(client):
    session = client.create_session()
    stream = client.stub.Generate(pb.GenerateRequest(input=pb.Input(text="The"), session_id=session.session_id,
                                                     max_new_tokens=300, ignore_eos=True))
    next(stream)
    with pytest.raises(grpc.RpcError) as error:
        client.complete("x", session_id=session.session_id, max_new_tokens=2)
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "busy" in error.value.details()
    stream.cancel()


@pytest.mark.parametrize("request_fields, code, field", [
    (dict(input=pb.Input(text="x"), session_id="s-nope"), grpc.StatusCode.NOT_FOUND, "session_id"),
    (dict(input=pb.Input(text="x"), sampling=pb.SamplingParams(top_p=0.0)), grpc.StatusCode.INVALID_ARGUMENT, "top_p"),
    (dict(input=pb.Input(text="x"), sampling=pb.SamplingParams(temperature=-1)), grpc.StatusCode.INVALID_ARGUMENT,
     "temperature"),
    (dict(input=pb.Input(text="")), grpc.StatusCode.INVALID_ARGUMENT, "input"),
    (dict(input=pb.Input(text="word " * 4000)), grpc.StatusCode.INVALID_ARGUMENT, "max_prompt_tokens"),
    (dict(input=pb.Input(token_ids=pb.TokenIds(ids=[1, 99999]))), grpc.StatusCode.INVALID_ARGUMENT,
     "input.token_ids.ids[1]"),
    (dict(input=pb.Input(text="x"), max_new_tokens=10**6), grpc.StatusCode.INVALID_ARGUMENT, "max_new_tokens"),
    (dict(input=pb.Input(text="x"), stop_token_ids=[-3]), grpc.StatusCode.INVALID_ARGUMENT, "stop_token_ids"),
    (dict(input=pb.Input(text="x" * 2_000_000)), grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
])
def test_bad_input_gets_the_right_code_and_names_the_field(client, request_fields, code, field):
    with pytest.raises(grpc.RpcError) as error:
        list(client.stub.Generate(pb.GenerateRequest(**request_fields), timeout=30))
    assert error.value.code() == code
    assert field in error.value.details()
    assert client.complete("still serving", max_new_tokens=2, ignore_eos=True).generated_tokens == 2


def test_logprobs_come_with_each_token(client):
    responses = list(client.stub.Generate(pb.GenerateRequest(
        input=pb.Input(text="And God"), max_new_tokens=4, ignore_eos=True, logprobs=True, top_logprobs=3,
        sampling=pb.SamplingParams(temperature=0.0))))
    tokens = [t for r in responses if r.HasField("delta") for t in r.delta.tokens]
    assert len(tokens) == 4
    for token in tokens:
        assert token.HasField("logprob") and token.logprob <= 0
        alternatives = [a.logprob for a in token.top_logprobs]
        assert len(alternatives) == 3 and alternatives == sorted(alternatives, reverse=True)
        assert token.token_id == token.top_logprobs[0].token_id  # greedy picks the most likely
        assert abs(token.logprob - alternatives[0]) < 1e-5


def test_list_sessions_pages(client):
    made = {client.create_session().session_id for _ in range(5)}
    seen, token, pages = set(), "", 0
    while True:
        page = client.stub.ListSessions(pb.ListSessionsRequest(page_size=2, page_token=token))
        assert len(page.sessions) <= 2
        seen.update(s.session_id for s in page.sessions)
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert made <= seen and pages >= 3
    for session_id in made:
        client.delete_session(session_id)


def test_session_api_errors(client):
    for call, request in ((client.stub.GetSession, pb.GetSessionRequest(session_id="s-none")),
                          (client.stub.ForkSession, pb.ForkSessionRequest(session_id="s-none")),
                          (client.stub.DeleteSession, pb.DeleteSessionRequest(session_id="s-none"))):
        with pytest.raises(grpc.RpcError) as error:
            call(request)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND and "s-none" in error.value.details()
    with pytest.raises(grpc.RpcError) as error:
        list(client.append("s-none", "text"))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_append_streams_progress_and_sessions_list(client):
    session = client.create_session()
    progress = list(client.append(session.session_id, "And it came to pass. " * 300))
    assert progress[-1].appended_tokens == progress[-1].total_tokens > 512
    assert len(progress) >= 2  # prefilled in chunks
    listed = {s.session_id: s for s in client.list_sessions()}
    assert listed[session.session_id].token_count == progress[-1].session_tokens
    client.delete_session(session.session_id)
    assert session.session_id not in {s.session_id for s in client.list_sessions()}


def test_stop_strings_end_the_stream_before_them(client):
    full = client.complete("And God said", max_new_tokens=30, **GREEDY)
    stop = full.text[5:9]
    stopped = client.complete("And God said", max_new_tokens=30, stop=[stop], **GREEDY)
    assert stopped.finish_reason == "stop"
    assert stop not in stopped.text and full.text.startswith(stopped.text)


def test_tokenize_detokenize_and_model_info(client):
    ids = client.tokenize("In the beginning")
    assert client.detokenize(ids) == "In the beginning"
    info = client.model_info()
    assert info.vocab_size == 8192 and info.state_bytes_per_session > 0 and info.backend == "cpu"


def test_metrics_are_prometheus_text_and_move(server, client):
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    before = urllib.request.urlopen(url, timeout=10).read().decode()
    for line in before.splitlines():  # the text exposition format: comments or `name{labels} value`
        if line.startswith("#"):
            assert re.match(r"# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* ", line), line
            continue
        series, value = line.rsplit(" ", 1)
        assert re.match(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*",?)*\})?$', series), line
        float(value)
    generated_before = metric_value(before, "sympow:generation_tokens_total") or 0
    client.complete("The", max_new_tokens=5, **GREEDY)
    after = urllib.request.urlopen(url, timeout=10).read().decode()
    assert metric_value(after, "sympow:generation_tokens_total") >= generated_before + 5
    assert metric_value(after, "sympow:time_to_first_token_seconds_count") >= 1
    assert metric_value(after, "sympow:state_bytes_capacity") > 0
    assert metric_value(after, "sympow:cuda_graph_replays_total") == 0  # the CPU records nothing
    # The concurrent streams earlier were decoded together: some steps had more than one row.
    assert metric_value(after, "sympow:batch_size_bucket", 'le="1"') < metric_value(after, "sympow:batch_size_count")


def test_sigterm_finishes_running_streams():
    running = RunningServer("--shutdown_grace_s", "1")
    with SympowClient(running.address) as client:
        result = GenerationResult()
        stream = client.generate("The", max_new_tokens=4000, ignore_eos=True, result=result)
        next(stream)
        running.process.send_signal(15)
        list(stream)
    assert result.finish_reason == "shutdown"
    assert running.process.wait(timeout=30) == 0


def test_python_client_example_runs(server):
    example = os.path.join(os.path.dirname(__file__), "..", "..", "clients", "python", "examples", "chat.py")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.join(BUILD, "python"), os.path.join(os.path.dirname(__file__), "..", "..", "clients", "python")]))
    result = subprocess.run(["/usr/bin/python3", example, server.address], capture_output=True, text=True,
                            timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert "A fool and his money" in result.stdout and "MB state" in result.stdout


def test_request_limit_is_resource_exhausted_with_a_retry_hint():
    running = RunningServer("--max_queued_requests", "2")
    try:
        with SympowClient(running.address) as client:
            streams = [client.stub.Generate(pb.GenerateRequest(input=pb.Input(text="The"), max_new_tokens=4000,
                                                               ignore_eos=True)) for _ in range(2)]
            for stream in streams:
                next(stream)
            with pytest.raises(grpc.RpcError) as error:
                client.complete("one too many", max_new_tokens=1)
            assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "retry" in error.value.details()
            for stream in streams:
                stream.cancel()
            deadline = time.time() + 10
            while time.time() < deadline:
                try:
                    assert client.complete("now there is room", max_new_tokens=1, ignore_eos=True).generated_tokens == 1
                    break
                except grpc.RpcError:
                    time.sleep(0.1)
            else:
                pytest.fail("the limit never freed up")
    finally:
        assert running.stop() == 0


def test_session_limit_is_resource_exhausted_and_frees_on_delete():
    running = RunningServer("--max_sessions", "2")
    try:
        with SympowClient(running.address) as client:
            first = client.create_session()
            client.create_session()
            with pytest.raises(grpc.RpcError) as error:
                client.create_session()
            assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "--max_sessions" in error.value.details()
            with pytest.raises(grpc.RpcError) as error:
                client.complete("ephemeral sessions count too", max_new_tokens=1)
            assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            client.delete_session(first.session_id)
            assert client.create_session().token_count == 0
    finally:
        assert running.stop() == 0


def test_out_of_range_flags_stop_the_server_naming_the_flag():
    for flag, value in (("--step_token_budget", "0"), ("--max_running_requests", "-1"),
                        ("--priority_aging_s", "-2")):
        result = subprocess.run([os.path.join(BUILD, "server", "sympow-server"), "--model", MODEL,
                                 "--metrics_listen", "", flag, value], capture_output=True, text=True, timeout=60)
        assert result.returncode == 1
        assert flag in result.stdout + result.stderr


def test_priority_out_of_range_is_invalid_argument_naming_the_field(client):
    with pytest.raises(grpc.RpcError) as error:
        list(client.stub.Generate(pb.GenerateRequest(input=pb.Input(text="The"), priority=101)))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "priority" in error.value.details()


def test_waiting_requests_are_admitted_by_priority():
    """One running place: a low-priority request that arrived first waits for a later high one."""
    running = RunningServer("--max_running_requests", "1", "--priority_aging_s", "1000")
    try:
        with SympowClient(running.address) as client:
            blocker = client.stub.Generate(pb.GenerateRequest(input=pb.Input(text="The"), max_new_tokens=4000,
                                                              ignore_eos=True))
            next(blocker)
            finished = []

            def run(name, priority):
                request = pb.GenerateRequest(input=pb.Input(text=name), max_new_tokens=16, ignore_eos=True,
                                             priority=priority)
                list(client.stub.Generate(request))
                finished.append(name)

            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                low = pool.submit(run, "low", 0)
                time.sleep(0.5)
                high = pool.submit(run, "high", 5)
                time.sleep(0.5)
                blocker.cancel()
                low.result(timeout=120)
                high.result(timeout=120)
            assert finished == ["high", "low"]
    finally:
        running.stop()


def test_deleting_a_session_while_it_streams_ends_the_stream_with_aborted(client):
    session = client.create_session().session_id
    stream = client.stub.Generate(pb.GenerateRequest(input=pb.Input(text="The"), session_id=session,
                                                     max_new_tokens=4000, ignore_eos=True))
    next(stream)
    client.delete_session(session)
    with pytest.raises(grpc.RpcError) as error:
        list(stream)
    assert error.value.code() == grpc.StatusCode.ABORTED
    assert session in error.value.details() and "deleted" in error.value.details()
    with pytest.raises(grpc.RpcError) as missing:
        client.get_session(session)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
