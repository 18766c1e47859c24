"""The prefix-state cache end to end: requests sharing a system prompt, and a conversation replayed
in full (as stateless chat clients do), start from cached states and give the same tokens and
log-probabilities as a server without the cache."""
import urllib.request

from conftest import RunningServer, metric_value
from sympow.v1 import sympow_pb2 as pb
from sympow_client import SympowClient

SYSTEM = ("You are a helpful assistant who answers in the style of the King James Bible. "
          "Keep answers short; quote scripture where it fits; never invent chapter numbers. ") * 3


def ask(client, text):
    request = pb.GenerateRequest(input=pb.Input(text=text), max_new_tokens=8, ignore_eos=True,
                                 logprobs=True, sampling=pb.SamplingParams(temperature=0.0))
    tokens, logprobs, out = [], [], ""
    for response in client.stub.Generate(request, timeout=120):
        if response.HasField("delta"):
            out += response.delta.text
            tokens += [t.token_id for t in response.delta.tokens]
            logprobs += [t.logprob for t in response.delta.tokens]
    return out, tokens, logprobs


def conversation(address):
    with SympowClient(address, timeout_s=120) as client:
        answers = [ask(client, SYSTEM + question) for question in
                   ("Who made the heaven?", "What is wisdom?", "Who was Moses?")]
        first_turn = SYSTEM + "Who made the heaven?"
        answers.append(ask(client, first_turn + answers[0][0] + " And the earth?"))
    return answers


def test_shared_prefixes_start_from_cached_states_with_the_same_results():
    cached = RunningServer("--prefix_cache_bytes", str(256 << 20))
    try:
        with_cache = conversation(cached.address)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{cached.metrics_port}/metrics", timeout=10).read().decode()
        log = cached.output()
    finally:
        cached.stop()
    cold = RunningServer("--prefix_cache_bytes", "0")
    try:
        without = conversation(cold.address)
    finally:
        cold.stop()
    for (text, tokens, logprobs), (cold_text, cold_tokens, cold_logprobs) in zip(with_cache, without):
        assert tokens == cold_tokens and text == cold_text
        assert max(abs(a - b) for a, b in zip(logprobs, cold_logprobs)) < 1e-3
    # The third question hits the system prompt cached at the branch point the second one made;
    # the replayed conversation hits the end of the first request.
    assert metric_value(metrics, "sympow:prefix_cache_hits_total") >= 2
    assert metric_value(metrics, "sympow:prefix_cache_saved_tokens_total") > 100
    assert metric_value(metrics, "sympow:prefix_cache_bytes") > 0
    assert "prefix cache:" in log
