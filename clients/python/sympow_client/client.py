"""SympowClient: sessions and streaming generation over gRPC."""
import dataclasses
from typing import Iterator, List, Optional, Sequence, Union

import grpc

from sympow.v1 import sympow_pb2 as pb
from sympow.v1 import sympow_pb2_grpc as rpc

Prompt = Union[str, Sequence[int]]
# Calls on a session carry its id in this metadata, so a router (deploy/nginx) can send all of a
# session's calls to one replica.
ROUTING_HEADER = "x-sympow-session"


def _routing(session_id: str):
    return ((ROUTING_HEADER, session_id),) if session_id else None


def _input(prompt: Prompt) -> pb.Input:
    if isinstance(prompt, str):
        return pb.Input(text=prompt)
    return pb.Input(token_ids=pb.TokenIds(ids=list(prompt)))


@dataclasses.dataclass
class GenerationResult:
    """What a finished stream reports (filled in when the generate() iterator is exhausted)."""
    text: str = ""
    token_ids: List[int] = dataclasses.field(default_factory=list)
    finish_reason: str = ""
    session_id: str = ""
    prompt_tokens: int = 0
    generated_tokens: int = 0
    session_tokens: int = 0
    time_to_first_token_s: float = 0.0


class SympowClient:
    def __init__(self, address: str = "localhost:50051", timeout_s: Optional[float] = None):
        self._channel = grpc.insecure_channel(address)
        self._stub = rpc.SympowStub(self._channel)
        self._timeout_s = timeout_s

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._channel.close()

    def generate(self, prompt: Prompt, *, session_id: str = "", max_new_tokens: int = 0,
                 temperature: Optional[float] = None, top_k: int = 0, top_p: Optional[float] = None,
                 min_p: float = 0.0, repetition_penalty: Optional[float] = None, seed: Optional[int] = None,
                 stop: Sequence[str] = (), stop_token_ids: Sequence[int] = (), ignore_eos: bool = False,
                 result: Optional[GenerationResult] = None, timeout_s: Optional[float] = None) -> Iterator[str]:
        """Streams generated text piece by piece; `result`, if given, is filled in at the end."""
        sampling = pb.SamplingParams(top_k=top_k, min_p=min_p)
        for name, value in (("temperature", temperature), ("top_p", top_p),
                            ("repetition_penalty", repetition_penalty), ("seed", seed)):
            if value is not None:
                setattr(sampling, name, value)
        request = pb.GenerateRequest(input=_input(prompt), session_id=session_id, sampling=sampling,
                                     max_new_tokens=max_new_tokens, stop=list(stop),
                                     stop_token_ids=list(stop_token_ids), ignore_eos=ignore_eos)
        result = result if result is not None else GenerationResult()
        for response in self._stub.Generate(request, timeout=timeout_s or self._timeout_s,
                                            metadata=_routing(session_id)):
            if response.HasField("delta"):
                result.text += response.delta.text
                result.token_ids.extend(t.token_id for t in response.delta.tokens)
                if response.delta.text:
                    yield response.delta.text
            else:
                finished = response.finished
                result.finish_reason = pb.FinishReason.Name(finished.reason).removeprefix("FINISH_REASON_").lower()
                result.session_id = finished.session_id
                result.prompt_tokens = finished.usage.prompt_tokens
                result.generated_tokens = finished.usage.generated_tokens
                result.session_tokens = finished.usage.session_tokens
                result.time_to_first_token_s = finished.usage.time_to_first_token_s

    def complete(self, prompt: Prompt, **kwargs) -> GenerationResult:
        """Runs generate() to the end and returns the whole result."""
        result = GenerationResult()
        for _ in self.generate(prompt, result=result, **kwargs):
            pass
        return result

    def create_session(self, system_prompt: Optional[Prompt] = None, session_id: str = "") -> pb.Session:
        """A new session; `session_id` chooses its id (so a router places it from the first call)."""
        request = pb.CreateSessionRequest(session_id=session_id)
        if system_prompt:
            request.system_prompt.CopyFrom(_input(system_prompt))
        return self._stub.CreateSession(request, timeout=self._timeout_s, metadata=_routing(session_id))

    def append(self, session_id: str, prompt: Prompt) -> Iterator[pb.AppendResponse]:
        return self._stub.Append(pb.AppendRequest(session_id=session_id, input=_input(prompt)),
                                 timeout=self._timeout_s, metadata=_routing(session_id))

    def get_session(self, session_id: str) -> pb.Session:
        return self._stub.GetSession(pb.GetSessionRequest(session_id=session_id), timeout=self._timeout_s,
                                     metadata=_routing(session_id))

    def list_sessions(self) -> List[pb.Session]:
        sessions, token = [], ""
        while True:
            page = self._stub.ListSessions(pb.ListSessionsRequest(page_token=token), timeout=self._timeout_s)
            sessions.extend(page.sessions)
            token = page.next_page_token
            if not token:
                return sessions

    def fork_session(self, session_id: str) -> pb.Session:
        return self._stub.ForkSession(pb.ForkSessionRequest(session_id=session_id), timeout=self._timeout_s,
                                      metadata=_routing(session_id))

    def delete_session(self, session_id: str) -> None:
        self._stub.DeleteSession(pb.DeleteSessionRequest(session_id=session_id), timeout=self._timeout_s,
                                 metadata=_routing(session_id))

    def tokenize(self, text: str) -> List[int]:
        return list(self._stub.Tokenize(pb.TokenizeRequest(text=text), timeout=self._timeout_s).token_ids)

    def detokenize(self, token_ids: Sequence[int]) -> str:
        return self._stub.Detokenize(pb.DetokenizeRequest(token_ids=list(token_ids)), timeout=self._timeout_s).text

    def model_info(self) -> pb.ModelInfo:
        return self._stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=self._timeout_s)

    @property
    def stub(self) -> rpc.SympowStub:
        """The raw generated stub, for everything the helpers above leave out."""
        return self._stub
