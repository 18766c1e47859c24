"""sympow-loadgen against a real server: every level runs to the end and reports its figures."""
import json
import os
import subprocess
import tempfile

from conftest import BUILD, RunningServer

FIELDS = ("sessions", "ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms", "tokens_per_s", "gpu_mem_bytes",
          "bw_fraction", "kv_cache_bytes_same_sessions")


def test_loadgen_reports_every_level():
    running = RunningServer()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "serving.json")
            result = subprocess.run(
                [os.path.join(BUILD, "clients", "loadgen", "sympow-loadgen"), "--server", running.address,
                 "--levels", "1,3", "--turns", "2", "--reply_tokens", "8", "--system_prompt_tokens", "64",
                 "--long_context_tokens", "600", "--long_context_every", "3", "--copy_tbps", "0.01",
                 "--commit", "abc123", "--out", out], capture_output=True, text=True, timeout=300)
            assert result.returncode == 0, result.stderr
            with open(out) as f:
                report = json.load(f)
    finally:
        running.stop()
    assert report["commit"] == "abc123"
    assert [level["sessions"] for level in report["levels"]] == [1, 3]
    for level in report["levels"]:
        assert all(field in level for field in FIELDS)
        assert level["failed_sessions"] == 0
        assert 0 < level["ttft_p50_ms"] <= level["ttft_p99_ms"]
        assert 0 < level["itl_p50_ms"] <= level["itl_p99_ms"]
        assert level["tokens_per_s"] > 0 and level["bw_fraction"] > 0
        # A KV cache grows with context; the states do not.
        assert level["kv_cache_bytes_same_sessions"] > 0
