"""A long session streamed in as many chat turns: the server's memory stays flat as it grows."""
import os

from conftest import RunningServer
from sympow_client import SympowClient

HELDOUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "heldout.txt")
TURN_TOKENS = 10_000
TURNS = 10  # 100k tokens


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def test_100k_token_session_keeps_server_memory_constant(tmp_path):
    running = RunningServer("--max_prompt_tokens", str(TURN_TOKENS))
    try:
        with SympowClient(running.address, timeout_s=600) as client:
            with open(HELDOUT, encoding="utf-8") as f:
                ids = client.tokenize(f.read())
            assert len(ids) >= TURN_TOKENS * TURNS
            session = client.create_session()
            rss = {}
            for turn in range(TURNS):
                piece = ids[turn * TURN_TOKENS:(turn + 1) * TURN_TOKENS]
                progress = list(client.append(session.session_id, piece))
                assert progress[-1].session_tokens == (turn + 1) * TURN_TOKENS
                rss[(turn + 1) * TURN_TOKENS] = rss_bytes(running.process.pid)
            result = client.complete("\n", session_id=session.session_id, max_new_tokens=16, temperature=0.0,
                                     ignore_eos=True)
            assert result.generated_tokens == 16 and result.session_tokens == TURNS * TURN_TOKENS + 1 + 16
            held = client.get_session(session.session_id)
            assert held.state_bytes == client.model_info().state_bytes_per_session
        figures = ", ".join(f"{tokens // 1000}k: {size / 2**20:.1f} MiB" for tokens, size in rss.items())
        print(f"server RSS by session length: {figures}")
        # Growth from 10k to 100k tokens stays within allocator noise, far below any per-token cost.
        assert rss[TURNS * TURN_TOKENS] - rss[TURN_TOKENS] < 32 * 2**20, figures
    finally:
        assert running.stop() == 0
