"""A real Prometheus (from Debian) scrapes two sympow-server replicas, and every PromQL expression
of the Grafana dashboard (deploy/grafana/sympow.json) returns data from its HTTP API."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

from conftest import RunningServer, free_port
from sympow_client import SympowClient

DASHBOARD = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "grafana", "sympow.json")


def query(port, expr):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    return json.load(urllib.request.urlopen(url, timeout=10))


def test_prometheus_scrapes_every_replica_and_the_dashboard_queries_return_data():
    replicas = [RunningServer() for _ in range(2)]
    storage = tempfile.mkdtemp(prefix="sympow-prometheus-")
    port = free_port()
    config = os.path.join(storage, "prometheus.yml")
    with open(config, "w") as f:
        targets = ", ".join(f"'127.0.0.1:{r.metrics_port}'" for r in replicas)
        f.write(f"global:\n  scrape_interval: 1s\nscrape_configs:\n"
                f"  - job_name: sympow\n    static_configs:\n      - targets: [{targets}]\n")
    prometheus = subprocess.Popen(
        [shutil.which("prometheus") or "/usr/bin/prometheus", f"--config.file={config}",
         f"--storage.tsdb.path={storage}/data", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for replica in replicas:  # traffic, so rates and quantiles have something to say
            with SympowClient(replica.address, timeout_s=60) as client:
                for i in range(3):
                    client.complete(f"The {i}", max_new_tokens=4, ignore_eos=True)
        with open(DASHBOARD) as f:
            expressions = [t["expr"] for panel in json.load(f)["panels"] for t in panel["targets"]]
        assert len(expressions) >= 10
        deadline = time.time() + 90
        missing = expressions + ["up"]
        while missing and time.time() < deadline:
            time.sleep(1)
            try:
                missing = [e for e in missing if not query(port, e)["data"]["result"]]
            except OSError:  # Prometheus still starting
                continue
        assert not missing, missing
        up = query(port, "up")["data"]["result"]
        assert sorted(float(r["value"][1]) for r in up) == [1.0, 1.0]
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)
        shutil.rmtree(storage, ignore_errors=True)
        for replica in replicas:
            replica.stop()
