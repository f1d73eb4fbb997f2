"""boto3 clients for Bedrock, called off the event loop.

boto3 is synchronous: each call runs in a thread of a pool of Bedrock's own
(a generation can take a minute; it must not hold the loop's default
executor, which other providers share), and a streamed answer (ConverseStream,
InvokeModelWithResponseStream) is read by a thread of its own that hands each
event to the event loop through a small queue, so the first tokens reach the
client while the rest are still being generated and a slow reader holds the
upstream back instead of piling the stream up in memory.

Clients are built from the config the way llama-stack 0.1.0 did (keys,
profile, region, retries, timeouts); a request that carries AWS keys in
X-LlamaStack-Provider-Data gets a client of its own (a few are kept). A
client is rebuilt after ``session_ttl`` seconds so that credentials boto3
resolved from a profile or a role are looked up again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any

from stack.errors import ConfigError, StackError

from .config import BedrockConfig, BedrockProviderData
from .errors import stack_error

#: clients kept for per-request credentials (least recently used dropped first)
_MAX_CLIENTS = 8
#: events a stream reader may be ahead of the client
_STREAM_QUEUE = 32
#: Bedrock calls in flight at once per process (and boto3's connection pool per client)
_CONCURRENCY = 64
_END = object()
_pool: concurrent.futures.ThreadPoolExecutor | None = None


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = concurrent.futures.ThreadPoolExecutor(_CONCURRENCY, thread_name_prefix="bedrock")
    return _pool


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


class BedrockClients:
    """The boto3 clients of one provider instance for one AWS service (``bedrock-runtime``)."""

    def __init__(self, config: BedrockConfig, *, service: str = "bedrock-runtime",
                 provider_data: Callable[[], Any] | None = None) -> None:
        self.config = config
        self.service = service
        self._provider_data = provider_data
        self._clients: OrderedDict[tuple, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    async def initialize(self) -> None:
        """Build the configured client now (in a thread): a missing boto3, profile or region fails start-up."""
        try:
            import boto3  # noqa: F401
        except ImportError:
            raise ConfigError("remote::bedrock needs the boto3 package, which is not installed: "
                              "pip install 'polystack[bedrock]'") from None
        await asyncio.get_running_loop().run_in_executor(_executor(), self._client, self._config_keys())

    @property
    def region(self) -> str | None:
        with self._lock:
            entry = next(iter(self._clients.values()), None)
        return entry[1].meta.region_name if entry else self.config.region_name

    @property
    def endpoint(self) -> str | None:
        with self._lock:
            entry = next(iter(self._clients.values()), None)
        return entry[1].meta.endpoint_url if entry else self.config.endpoint_url

    def _config_keys(self) -> tuple:
        c = self.config
        return (c.aws_access_key_id, _secret(c.aws_secret_access_key), _secret(c.aws_session_token))

    def _request_keys(self) -> tuple:
        """The keys of this request: X-LlamaStack-Provider-Data's when it sends a key pair."""
        data = self._provider_data() if self._provider_data is not None else None
        if isinstance(data, BedrockProviderData) and data.aws_access_key_id and data.aws_secret_access_key:
            return (data.aws_access_key_id, data.aws_secret_access_key, data.aws_session_token)
        return self._config_keys()

    def _client(self, keys: tuple) -> Any:
        ttl = self.config.session_ttl
        with self._lock:
            entry = self._clients.get(keys)
            if entry is not None and (ttl is None or time.monotonic() - entry[0] < ttl):
                self._clients.move_to_end(keys)
                return entry[1]
        client = self._build(keys)
        with self._lock:
            self._clients[keys] = (time.monotonic(), client)
            self._clients.move_to_end(keys)
            while len(self._clients) > _MAX_CLIENTS:
                self._clients.popitem(last=False)
        return client

    def _build(self, keys: tuple) -> Any:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, NoRegionError, ProfileNotFound

        c = self.config
        key_id, secret, token = keys
        retries: dict[str, Any] = {}
        if c.total_max_attempts is not None:
            retries["total_max_attempts"] = c.total_max_attempts
        if c.retry_mode is not None:
            retries["mode"] = c.retry_mode
        settings = Config(connect_timeout=c.connect_timeout, read_timeout=c.read_timeout, retries=retries or None,
                          max_pool_connections=_CONCURRENCY, user_agent_extra="polystack")
        try:
            # a profile only when no keys are given: keys win, as in boto3's own chain
            session = boto3.Session(aws_access_key_id=key_id, aws_secret_access_key=secret, aws_session_token=token,
                                    region_name=c.region_name, profile_name=None if key_id else c.profile_name)
            return session.client(self.service, config=settings, endpoint_url=c.endpoint_url)
        except ProfileNotFound as exc:
            raise ConfigError(f"profile_name: {exc}") from None
        except NoRegionError:
            raise ConfigError("region_name: no AWS region; set region_name in the config, or AWS_DEFAULT_REGION "
                              "or a region in the AWS profile") from None
        except BotoCoreError as exc:
            raise ConfigError(f"cannot build the {self.service} client: {exc}") from None

    async def call(self, operation: str, what: str, **kwargs: Any) -> dict[str, Any]:
        """``client.<operation>(**kwargs)`` in a thread; Bedrock's errors as the stack's."""
        keys = self._request_keys()  # read on the loop: the provider data lives in the request's context
        return await asyncio.get_running_loop().run_in_executor(
            _executor(), self._call, keys, operation, what, kwargs)

    def _call(self, keys: tuple, operation: str, what: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        from botocore.response import StreamingBody

        client = self._client(keys)
        try:
            result = getattr(client, operation)(**kwargs)
            if isinstance(result.get("body"), StreamingBody):  # InvokeModel's answer: read in this thread too
                result["body"] = result["body"].read()
            return result
        except StackError:
            raise
        except Exception as exc:  # noqa: BLE001 - botocore's errors have no one base; each maps to a stack error
            raise stack_error(exc, f"{operation} ({what})") from None

    async def stream(self, operation: str, what: str, key: str = "stream", **kwargs: Any
                     ) -> AsyncIterator[dict[str, Any]]:
        """The events of a streamed operation (in the answer's ``key``), as the upstream sends them.

        The request is made before this returns, so an error answer (a bad
        model id, throttling) is raised here, before the response starts.
        """
        response = await self.call(operation, what, **kwargs)
        return _events(response[key], f"{operation} ({what})")


async def _events(stream: Any, where: str) -> AsyncIterator[dict[str, Any]]:
    """A botocore EventStream read by a thread, handed over one event at a time."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(_STREAM_QUEUE)
    stopped, finished = threading.Event(), threading.Event()

    def hand_over(item: Any) -> None:
        if stopped.is_set():
            return
        handed = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        while True:  # wait for room in the queue, but not for a reader that left or a loop that ended
            try:
                handed.result(timeout=1.0)
                return
            except concurrent.futures.TimeoutError:
                if stopped.is_set() or loop.is_closed():
                    handed.cancel()
                    return

    def read() -> None:
        try:
            for event in stream:
                if stopped.is_set():
                    break
                hand_over(event)
            hand_over(_END)
        except Exception as exc:  # noqa: BLE001 - every failure reaches the reader, as the stack's error
            if not stopped.is_set():
                hand_over(exc if isinstance(exc, StackError) else stack_error(exc, where))
        finally:
            stream.close()
            finished.set()

    threading.Thread(target=read, name="bedrock-stream", daemon=True).start()
    try:
        while True:
            item = await queue.get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        if not finished.is_set():  # an abandoned stream: let the reader go, emptying the queue it may wait on
            stopped.set()
            while not queue.empty():
                queue.get_nowait()
            stream.close()  # a reader waiting on the upstream's next event wakes with an error and ends
