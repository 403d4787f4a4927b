"""The ``embedded`` Inspect model provider: local Hugging Face models served with continuous batching.

Model strings:

- ``embedded/SmolLM2-135M-Instruct``: the bundled model, materialised on first use;
- ``embedded/<folder>``: any local Hugging Face causal-LM folder, e.g. a merged training checkpoint
  (an absolute path gives ``embedded//abs/path``).

Model args (``-M`` on the Inspect command line, ``args`` in teachwhy.yaml): ``device`` (default ``cuda``
when available, else ``cpu``), ``dtype`` (``float32``, ``bfloat16``, ``float16``, or ``int8``: weight-only,
bfloat16 compute, an opt-in for speed that changes the model slightly, see :mod:`teachwhy.models.quantize`;
default ``float32``),
``max_batch`` (the most requests decoded together; default 32, also the default ``max_connections``) and
``prefix_cache_mb`` (memory for the keys and values of earlier prompts and replies, so a turn that repeats
an agent's history or a shared system prompt runs only its new tokens; default 1024, 0 turns it off).

Unlike Inspect's ``hf`` provider, a request starts decoding as soon as it arrives (no wait for a batch to
fill, no polling for results), temperature 0 means greedy decoding, ``seed`` makes sampling reproducible per
request, usage counts only the request's own tokens, and a completion cut off by ``max_tokens`` reports
``stop_reason="max_tokens"``. Tool definitions are passed to chat templates that render them; otherwise they
are written into the system prompt as text (see :mod:`teachwhy.models.text_tools`). Completions are returned
as plain text: tool calls are not parsed out of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import sniffio
from inspect_ai.model import (
    ChatCompletionChoice,
    ChatMessage,
    ChatMessageAssistant,
    ChatMessageTool,
    GenerateConfig,
    ModelAPI,
    ModelOutput,
    ModelUsage,
    modelapi,
)
from inspect_ai.model._model_info import MODEL_INFO_LOOKUP_API_KEY  # what Inspect's own hf provider checks
from inspect_ai.tool import ToolChoice, ToolInfo

from teachwhy.models.text_tools import tool_call_text, tool_definitions_text, tool_response_text, tool_schema

if TYPE_CHECKING:  # importing these loads torch, which only a model that is actually created needs
    from teachwhy.models.batching import ContinuousBatcher, Deliver, GenerationRequest, GenerationResult
    from teachwhy.models.loaded import LoadedModel

    RequestFactory = Callable[[Deliver], GenerationRequest]

DEFAULT_MAX_BATCH = 32
DEFAULT_PREFIX_CACHE_MB = 1024
DEFAULT_MAX_TOKENS = 2048
# a request without a temperature samples at 1.0, as Inspect's hf provider and most APIs do
DEFAULT_TEMPERATURE = 1.0
_MODEL_ARGS = ("device", "dtype", "max_batch", "prefix_cache_mb")


@modelapi(name="embedded")
def embedded() -> type[ModelAPI]:
    """Inspect's entry for ``embedded/...`` model strings."""
    return EmbeddedModelAPI


class EmbeddedModelAPI(ModelAPI):
    """Inspect provider for local models with continuous batching (see the module docstring).

    Args:
        model_name: ``SmolLM2-135M-Instruct`` or the path of a local model folder.
        base_url: unused (the model runs in this process).
        api_key: unused.
        config: default generation settings.
        **model_args: ``device``, ``dtype``, ``max_batch``, ``prefix_cache_mb``.
    """

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),
        **model_args: Any,
    ) -> None:
        super().__init__(model_name=model_name, base_url=base_url, api_key=api_key, config=config)
        self._loaded: LoadedModel | None = None
        self._max_batch = DEFAULT_MAX_BATCH
        self._template_renders_tools = False
        if api_key == MODEL_INFO_LOOKUP_API_KEY:
            # Inspect builds (and keeps, memoized) an instance only to read the model's name: loading the
            # weights for it would hold every evaluated checkpoint in memory until the process ends
            return
        from teachwhy.errors import UserError
        from teachwhy.models.loaded import acquire, default_device, model_folder

        unknown = sorted(set(model_args) - set(_MODEL_ARGS))
        if unknown:
            raise UserError(
                f"embedded/{model_name}: unknown model args {', '.join(unknown)} "
                f"(accepted: {', '.join(_MODEL_ARGS)})"
            )
        max_batch = int(model_args.get("max_batch") or DEFAULT_MAX_BATCH)
        if max_batch < 1:
            raise UserError(f"embedded/{model_name}: max_batch must be at least 1", key="max_batch")
        self._max_batch = max_batch
        prefix_cache_mb = model_args.get("prefix_cache_mb")
        prefix_cache_mb = DEFAULT_PREFIX_CACHE_MB if prefix_cache_mb is None else int(prefix_cache_mb)
        if prefix_cache_mb < 0:
            raise UserError(f"embedded/{model_name}: prefix_cache_mb must be >= 0", key="prefix_cache_mb")
        self._loaded = acquire(
            model_folder(model_name),
            device=str(model_args.get("device") or default_device()),
            dtype=str(model_args.get("dtype") or "float32"),
            max_batch=max_batch,
            prefix_cache_mb=prefix_cache_mb,
        )
        template = self._live().tokenizer.chat_template
        self._template_renders_tools = isinstance(template, str) and "tools" in template

    async def generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> ModelOutput:
        from teachwhy.models.batching import GenerationRequest
        from teachwhy.models.sampling import SamplingSettings

        prompt_ids = self._encode(input, tools)
        settings = SamplingSettings(
            max_tokens=config.max_tokens or DEFAULT_MAX_TOKENS,
            temperature=config.temperature if config.temperature is not None else DEFAULT_TEMPERATURE,
            top_p=config.top_p,
            top_k=config.top_k,
            stop_seqs=tuple(config.stop_seqs or ()),
            seed=config.seed,
        )
        outcome = await _wait_for(
            self._live().batcher,
            lambda deliver: GenerationRequest(prompt_ids=prompt_ids, settings=settings, deliver=deliver),
        )
        if isinstance(outcome, BaseException):
            raise outcome
        message = ChatMessageAssistant(content=outcome.text, model=self.model_name, source="generate")
        return ModelOutput(
            model=self.model_name,
            choices=[ChatCompletionChoice(message=message, stop_reason=outcome.stop_reason)],
            usage=ModelUsage(
                input_tokens=outcome.input_tokens,
                output_tokens=outcome.output_tokens,
                total_tokens=outcome.input_tokens + outcome.output_tokens,
            ),
            time=outcome.seconds,
        )

    def _encode(self, messages: list[ChatMessage], tools: list[ToolInfo]) -> list[int]:
        loaded = self._live()
        with loaded.encode_lock:  # fast tokenizers must not be used from two threads at once
            tokenizer = loaded.tokenizer
            if tokenizer.chat_template is None:
                text = (
                    "".join(f"{m['role']}: {m['content']}\n" for m in chat_dicts(messages, tools))
                    + "assistant:"
                )
                return list(tokenizer(text)["input_ids"])
            native = self._template_renders_tools and bool(tools)
            rendered = tokenizer.apply_chat_template(
                chat_dicts(messages, [] if native else tools),
                tools=[tool_schema(t) for t in tools] if native else None,
                add_generation_prompt=True,
                tokenize=False,
            )
            return list(tokenizer(rendered, add_special_tokens=False)["input_ids"])

    def close(self) -> None:
        from teachwhy.models.loaded import release

        loaded = getattr(self, "_loaded", None)
        if loaded is not None:
            self._loaded = None
            release(loaded)

    def _live(self) -> LoadedModel:
        if self._loaded is None:
            raise RuntimeError(f"the model embedded/{self.model_name} has been closed")
        return self._loaded

    def max_tokens(self) -> int | None:
        return DEFAULT_MAX_TOKENS

    def max_connections(self) -> int:
        return self._max_batch

    def collapse_user_messages(self) -> bool:
        return True

    def connection_key(self) -> str:
        return str(self._loaded.folder) if self._loaded is not None else self.model_name


def chat_dicts(messages: list[ChatMessage], tools: list[ToolInfo]) -> list[dict[str, str]]:
    """Inspect messages as ``{"role", "content"}`` dicts for a chat template.

    Tool calls and tool results become text (see :mod:`teachwhy.models.text_tools`); tool results are
    given to the model as user turns. When ``tools`` is not empty their definitions are added to the
    system prompt (a system message is created if there is none). Consecutive turns of the same role
    are merged, since many templates expect roles to alternate.

    Raises:
        ValueError: a message holds images, audio or other non-text content.
    """
    out: list[dict[str, str]] = []
    for message in messages:
        if not isinstance(message.content, str) and any(
            c.type not in ("text", "reasoning") for c in message.content
        ):
            raise ValueError("the embedded provider accepts text messages only")
        role, content = message.role, message.text
        if isinstance(message, ChatMessageAssistant) and message.tool_calls:
            content = "\n".join([content, *(tool_call_text(call) for call in message.tool_calls)]).strip()
        elif isinstance(message, ChatMessageTool):
            role, content = "user", tool_response_text(message)
        if out and out[-1]["role"] == role:
            out[-1]["content"] += "\n\n" + content
        else:
            out.append({"role": role, "content": content})
    if tools:
        definitions = tool_definitions_text(tools)
        if out and out[0]["role"] == "system":
            out[0]["content"] += "\n\n" + definitions
        else:
            out.insert(0, {"role": "system", "content": definitions})
    return out


async def _wait_for(
    batcher: ContinuousBatcher, make_request: RequestFactory
) -> GenerationResult | BaseException:
    """Queue one request and wait for its outcome without polling; cancelling the wait cancels the request."""
    if sniffio.current_async_library() != "asyncio":
        return await _wait_in_thread(batcher, make_request)
    loop = asyncio.get_running_loop()
    future: asyncio.Future[GenerationResult | BaseException] = loop.create_future()

    def settle(outcome: GenerationResult | BaseException) -> None:
        if not future.done():
            future.set_result(outcome)

    def deliver(outcome: GenerationResult | BaseException) -> None:
        # a RuntimeError means the caller's event loop has closed: nobody is waiting any more
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, outcome)

    request = make_request(deliver)
    batcher.submit(request)
    try:
        return await future
    except asyncio.CancelledError:
        request.cancelled.set()
        raise


async def _wait_in_thread(
    batcher: ContinuousBatcher, make_request: RequestFactory
) -> GenerationResult | BaseException:
    """The same wait for event loops other than asyncio (trio), through a worker thread."""
    done = threading.Event()
    box: list[GenerationResult | BaseException] = []

    def deliver(outcome: GenerationResult | BaseException) -> None:
        box.append(outcome)
        done.set()

    request = make_request(deliver)
    batcher.submit(request)
    try:
        await anyio.to_thread.run_sync(done.wait, abandon_on_cancel=True)
    except BaseException:
        request.cancelled.set()
        raise
    return box[0]
