"""Continuous batching for a causal language model on one device, driven by one worker thread.

Requests arrive from any thread (the Inspect provider sends them from its event loop) and wait in a queue.
The worker owns the model and a running batch with one shared, left-padded key/value cache. Between two
decoding steps it admits every waiting request (up to ``max_batch`` rows): with the prefix cache on, each
newcomer's prompt is matched against the keys and values of earlier prompts and finished sequences (see
:mod:`teachwhy.models.prefix_cache`) and only the unmatched rest is run, one newcomer after another so that
episodes sharing a world reuse it at once; without it, the newcomers are prefilled together. Their cache is
left-padded to the running batch's length (or the batch's to theirs) and the two are stacked. Each step
then feeds every row its last token; rows that finish (end of sequence, a stop sequence, their token
limit) leave the batch at once, their keys and values go to the prefix cache, and columns that only
padding still uses are dropped.
No request ever waits for a batch to fill or for another request to finish.

Each row keeps its own position ids, so padding never shifts a sequence's rotary positions, and its own
random generator (see :mod:`teachwhy.models.sampling`). Models whose cache is not a plain per-layer
key/value store (sliding windows, linear attention) cannot be stacked that way; for them newcomers join
only when the running batch has emptied.

Results and errors are handed to each request's ``deliver`` callback from the worker thread. An exception
in the worker fails every request in the batch it broke and the worker carries on with the next.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache

from teachwhy.models.kv_cache import drop_leading_columns, new_cache, row_key_values, stack, stackable
from teachwhy.models.prefix_cache import PrefixCache
from teachwhy.models.sampling import SamplingSettings, StopReason, TokenChooser, find_stop


@dataclass(frozen=True)
class GenerationResult:
    """The outcome of one request.

    Attributes:
        text: the completion, cut before any stop sequence, without special tokens.
        input_tokens: tokens in the prompt.
        output_tokens: tokens the model generated for this request (no padding; the end-of-sequence
            token counts when the model produced one).
        stop_reason: ``"stop"`` (end of sequence or a stop sequence), ``"max_tokens"`` (cut off by the
            request's limit) or ``"model_length"`` (the model's context window is full).
        seconds: time from admission to the last token.
    """

    text: str
    input_tokens: int
    output_tokens: int
    stop_reason: StopReason
    seconds: float


Deliver = Callable[[GenerationResult | BaseException], None]


@dataclass
class GenerationRequest:
    """One prompt to complete, with its own settings and a callback that receives the outcome."""

    prompt_ids: list[int]
    settings: SamplingSettings
    deliver: Deliver
    cancelled: threading.Event = field(default_factory=threading.Event)
    settled: bool = False

    def settle(self, outcome: GenerationResult | BaseException) -> None:
        """Deliver the outcome, once; later calls are ignored (only the worker thread calls this)."""
        if not self.settled:
            self.settled = True
            self.deliver(outcome)


@dataclass
class _Row:
    request: GenerationRequest
    chooser: TokenChooser
    limit: int  # max new tokens after clamping to the context window
    position: int  # rotary position of the next token fed to the model
    started: float
    generated: list[int] = field(default_factory=list)
    done: GenerationResult | None = None


class _Closed(Exception):
    pass


_CLOSED_BEFORE_START = "the embedded model was closed before this request started"


class ContinuousBatcher:
    """Serves generation requests for one model from a background thread.

    Args:
        model: a causal LM (``AutoModelForCausalLM``) already on its device, in eval mode.
        tokenizer: its tokenizer (used to decode completions).
        max_batch: the most rows decoded together.
        stop_token_ids: token ids that end a sequence.
        context_window: the model's maximum sequence length (prompt plus completion).
        prefix_cache_bytes: memory for keys and values of prompts and finished sequences, reused by later
            prompts that start the same way (see :mod:`teachwhy.models.prefix_cache`); 0 turns it off.
        name: names the worker thread.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_batch: int,
        stop_token_ids: set[int],
        context_window: int,
        prefix_cache_bytes: int = 0,
        name: str = "teachwhy-embedded",
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.stop_token_ids = set(stop_token_ids)
        self.context_window = context_window
        self.device = torch.device(model.device)
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_id = int(pad) if pad is not None else min(self.stop_token_ids, default=0)
        self._queue: queue.Queue[GenerationRequest | None] = queue.Queue()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._rows: list[_Row] = []
        self._cache: DynamicCache | None = None
        self._mask: torch.Tensor | None = None  # (rows, cache length): 1 for real tokens, 0 for padding
        self._stackable = stackable(model.config)
        # only plain key/value caches can be cut into per-sequence pieces and joined again
        self.prefix_cache = (
            PrefixCache(prefix_cache_bytes) if prefix_cache_bytes > 0 and self._stackable else None
        )
        self.prefilled_tokens = 0  # prompt tokens run through the model (not served from the prefix cache)
        self.steps = 0  # decoding steps run, for benchmarks and tests
        self.peak_batch = 0  # the most rows decoded together so far
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # -- public, any thread -------------------------------------------------------------------------------

    def submit(self, request: GenerationRequest) -> None:
        """Queue a request; its ``deliver`` callback is called exactly once, from the worker thread."""
        with self._lock:  # so nothing can be queued behind the worker's stop signal
            if self._closed.is_set():
                raise RuntimeError("the embedded model has been closed")
            self._queue.put(request)

    def close(self, timeout: float = 30.0) -> None:
        """Stop the worker; requests still queued or running are failed with an error."""
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
            self._queue.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- worker -------------------------------------------------------------------------------------------

    def _run(self) -> None:
        with torch.inference_mode():
            while True:
                try:
                    incoming = self._take_waiting()
                except _Closed:
                    break
                try:
                    if incoming:
                        self._admit(incoming)
                    if self._rows:
                        self._step()
                except Exception as error:  # delivered to every caller in the broken batch
                    self._fail_all(error, incoming)
        self._fail_all(RuntimeError("the embedded model was closed before this request finished"), [])
        self._drain_closed()

    def _take_waiting(self) -> list[GenerationRequest]:
        """Whatever is waiting, up to the free rows; blocks only when the batch is empty."""
        free = self.max_batch - len(self._rows)
        if free <= 0 or (self._rows and not self._stackable):
            if self._closed.is_set():
                raise _Closed
            return []
        taken: list[GenerationRequest] = []
        block = not self._rows
        while len(taken) < free:
            try:
                item = self._queue.get(block=block and not taken)
            except queue.Empty:
                break
            if item is None:
                for request in taken:
                    request.settle(RuntimeError(_CLOSED_BEFORE_START))
                raise _Closed
            if item.cancelled.is_set():
                item.settle(RuntimeError("the request was cancelled before it started"))
            else:
                taken.append(item)
        return taken

    def _admit(self, requests: list[GenerationRequest]) -> None:
        admitted: list[_Row] = []
        for request in requests:
            prompt_len = len(request.prompt_ids)
            room = self.context_window - prompt_len
            if prompt_len == 0:
                request.settle(ValueError("the prompt is empty"))
            elif room < 1:
                request.settle(GenerationResult("", prompt_len, 0, "model_length", 0.0))
            else:
                chooser = TokenChooser(request.settings, self.device)
                limit = min(request.settings.max_tokens, room)
                admitted.append(_Row(request, chooser, limit, prompt_len, time.perf_counter()))
        if not admitted:
            return
        if self.prefix_cache is None:
            cache, mask, logits = self._prefill_together(admitted)
            parts = [(cache, mask)]
        else:
            # one at a time, so a newcomer reuses what the ones before it just stored (a shared world)
            prefilled = [self._prefill_after_prefix(row) for row in admitted]
            parts = [(cache, mask) for cache, mask, _ in prefilled]
            logits = torch.cat([row_logits for _, _, row_logits in prefilled])
        if self._cache is None or self._mask is None or not self._rows:
            self._cache, self._mask = stack(parts) if len(parts) > 1 else parts[0]
            self._rows = admitted
        else:
            self._cache, self._mask = stack([(self._cache, self._mask), *parts])
            self._rows = self._rows + admitted
        self.peak_batch = max(self.peak_batch, len(self._rows))
        first = len(self._rows) - len(admitted)
        self._record(logits, range(first, len(self._rows)))

    def _prefill_together(self, admitted: list[_Row]) -> tuple[DynamicCache, torch.Tensor, torch.Tensor]:
        """Run every newcomer's whole prompt in one left-padded forward pass."""
        width = max(len(r.request.prompt_ids) for r in admitted)
        ids = torch.full((len(admitted), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(admitted), width), dtype=torch.long)
        for i, row in enumerate(admitted):
            prompt = row.request.prompt_ids
            ids[i, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            mask[i, width - len(prompt) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = new_cache(self.model.config, grow=self._stackable)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self.prefilled_tokens += sum(len(r.request.prompt_ids) for r in admitted)
        return cache, mask, out.logits[:, -1, :]

    def _prefill_after_prefix(self, row: _Row) -> tuple[DynamicCache, torch.Tensor, torch.Tensor]:
        """Run only the part of one prompt that the prefix cache does not hold, then store the prompt."""
        assert self.prefix_cache is not None
        prompt = row.request.prompt_ids
        # at least the last prompt token is run, for the logits of the first new token
        found = self.prefix_cache.match(prompt, len(prompt) - 1)
        start = found.length if found is not None else 0
        cache = new_cache(self.model.config, grow=True, prefix=found.layers if found is not None else None)
        ids = torch.tensor([prompt[start:]], dtype=torch.long, device=self.device)
        mask = torch.ones((1, len(prompt)), dtype=torch.long, device=self.device)
        positions = torch.arange(start, len(prompt), device=self.device).unsqueeze(0)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self.prefilled_tokens += len(prompt) - start
        self.prefix_cache.insert(prompt, row_key_values(cache, 0, len(prompt)))
        return cache, mask, out.logits[:, -1, :]

    def _step(self) -> None:
        assert self._cache is not None and self._mask is not None
        tokens = torch.tensor([[r.generated[-1]] for r in self._rows], dtype=torch.long, device=self.device)
        positions = torch.tensor([[r.position] for r in self._rows], dtype=torch.long, device=self.device)
        self._mask = torch.cat([self._mask, self._mask.new_ones((len(self._rows), 1))], dim=1)
        out = self.model(
            input_ids=tokens,
            attention_mask=self._mask,
            position_ids=positions,
            cache=self._cache,
            use_cache=True,
        )
        self.steps += 1
        for row in self._rows:
            row.position += 1
        self._record(out.logits[:, -1, :], range(len(self._rows)))

    def _record(self, logits: torch.Tensor, rows: range) -> None:
        """Choose each row's next token, finish the rows that are done, and shrink the batch."""
        greedy = logits.argmax(dim=-1).tolist()  # one call for all greedy rows, not one per row
        for offset, index in enumerate(rows):
            row = self._rows[index]
            settings = row.chooser.settings
            token = greedy[offset] if settings.greedy else row.chooser.choose(logits[offset])
            row.generated.append(token)
            row.done = self._finished(row, token)
        for row in self._rows:
            if row.done is None and row.request.cancelled.is_set():
                row.done = GenerationResult("", len(row.request.prompt_ids), len(row.generated), "stop", 0.0)
        keep = [i for i, r in enumerate(self._rows) if r.done is None]
        if len(keep) < len(self._rows) and self.prefix_cache is not None:
            self._store_finished()
        for row in self._rows:
            if row.done is not None:
                row.request.settle(row.done)
        if len(keep) == len(self._rows):
            return
        if not keep:
            self._rows, self._cache, self._mask = [], None, None
            return
        assert self._cache is not None and self._mask is not None
        kept = torch.tensor(keep, dtype=torch.long, device=self.device)
        self._cache.batch_select_indices(kept)
        self._mask = self._mask[kept]
        self._rows = [self._rows[i] for i in keep]
        if self._stackable:
            self._drop_padding_columns()

    def _store_finished(self) -> None:
        """Keep each finished sequence's keys and values, for the next turn that repeats it."""
        assert self.prefix_cache is not None and self._cache is not None
        for index, row in enumerate(self._rows):
            if row.done is None:
                continue
            # the last chosen token was never run through the model, so it has no keys yet
            tokens = row.request.prompt_ids + row.generated[:-1]
            self.prefix_cache.insert(tokens, row_key_values(self._cache, index, len(tokens)))

    def _finished(self, row: _Row, token: int) -> GenerationResult | None:
        settings = row.request.settings
        prompt_len = len(row.request.prompt_ids)
        ended = token in self.stop_token_ids
        content = row.generated[:-1] if ended else row.generated
        reason: StopReason | None = "stop" if ended else None
        text: str | None = None
        if settings.stop_seqs:
            text = self.tokenizer.decode(content, skip_special_tokens=True)
            cut = find_stop(text, settings.stop_seqs)
            if cut is not None:
                text, reason = text[:cut], "stop"
        if reason is None and len(row.generated) >= row.limit:
            reason = "max_tokens" if row.limit == settings.max_tokens else "model_length"
        if reason is None:
            return None
        if text is None:
            text = self.tokenizer.decode(content, skip_special_tokens=True)
        seconds = time.perf_counter() - row.started
        return GenerationResult(text, prompt_len, len(row.generated), reason, seconds)

    def _drop_padding_columns(self) -> None:
        """Drop leading cache columns that are padding in every remaining row."""
        assert self._cache is not None and self._mask is not None
        used = self._mask.any(dim=0).nonzero()
        start = int(used[0].item()) if len(used) else 0
        if start == 0:
            return
        drop_leading_columns(self._cache, start)
        self._mask = self._mask[:, start:]

    def _fail_all(self, error: BaseException, incoming: list[GenerationRequest]) -> None:
        for request in [r.request for r in self._rows] + incoming:
            request.settle(error)
        self._rows, self._cache, self._mask = [], None, None

    def _drain_closed(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                item.settle(RuntimeError(_CLOSED_BEFORE_START))
