"""A two-turn chat on one session, streamed: the second turn continues the first's state.

usage: PYTHONPATH=build/python:clients/python python3 clients/python/examples/chat.py [HOST:PORT]
"""
import sys

from sympow_client import GenerationResult, SympowClient


def main(address):
    with SympowClient(address) as client:
        session = client.create_session(system_prompt="The book of proverbs.\n")
        for turn in ("A fool and his money", "\nThe wise man"):
            print(turn, end="", flush=True)
            result = GenerationResult()
            for piece in client.generate(turn, session_id=session.session_id, max_new_tokens=24, seed=5,
                                         temperature=0.8, result=result):
                print(piece, end="", flush=True)
            print(f"\n[{result.generated_tokens} tokens, {result.finish_reason}, "
                  f"session holds {result.session_tokens} tokens]")
        info = client.get_session(session.session_id)
        print(f"session {info.session_id}: {info.token_count} tokens in a {info.state_bytes / 1e6:.1f} MB state")
        client.delete_session(session.session_id)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "localhost:50051")
