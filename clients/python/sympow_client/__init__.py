"""A small Python client for sympow-server (over the generated sympow.v1 stubs).

    from sympow_client import SympowClient
    with SympowClient("localhost:50051") as client:
        for text in client.generate("And God said", max_new_tokens=32, seed=7):
            print(text, end="", flush=True)

The stubs come from the build (build/python); put it and clients/python on PYTHONPATH.
"""
from sympow_client.client import GenerationResult, SympowClient

__all__ = ["GenerationResult", "SympowClient"]
