"""A continuous-batching engine over a Hugging Face causal LM's ``forward``, on torch CPU (or CUDA).

Why not transformers' own ``ContinuousBatchingManager`` (``model.init_continuous_batching``)? It runs on CPU
in transformers 5.24 (paged attention over SDPA), but its sampling is per manager, not per request: one
``do_sample`` switch for the whole batch, one RNG (no per-request ``seed``), no presence/frequency penalties
and only the chosen token's logprob (no ``top_logprobs``); its default sizing also claims 60 % of host
memory for the KV cache. The OpenAI API needs all of those per request, in one mixed batch. So the scheduler
here is ours; the model, its attention kernels (SDPA) and its ``DynamicCache`` are transformers'.

How a step works. One scheduler thread owns the model and the running batch. The batch's KV cache is one
``DynamicCache`` whose rows are left-padded to a common length L (row i holds its tokens in the last
``len_i`` columns; a boolean ``valid`` [B, L] says which columns are real). Each loop:

1. drop sequences whose consumer cancelled (the client disconnected) or that finished;
2. admit waiting sequences while the running batch has room (``max_num_seqs``, ``max_num_tokens`` reserved
   as prompt + max_tokens) and prefill them together (left-padded, ``max_prefill_tokens`` per step), which
   yields their first token; their cache rows are padded to the batch's L (or the batch to theirs) and
   concatenated -- this is how new requests join between decode steps;
3. one decode step for every running sequence: input [B, 1], an explicit 4D attention mask built from
   ``valid`` (and the sliding window for sliding-attention layers), per-row position ids;
4. per-row sampling (``aiaas.llm.sampling``) and delivery of the new tokens to each request's asyncio queue
   with one ``call_soon_threadsafe`` per step.

After rows leave, columns that are padding in every remaining row are trimmed, so L stays the longest live
sequence. Padding costs compute only while short and long sequences share the batch.
"""

from __future__ import annotations

import inspect
import logging
import time
from pathlib import Path
from typing import Any

import torch

from aiaas.errors import InferenceError
from aiaas.llm.base import EngineStats, Step
from aiaas.llm.quant import quantize as quantize_model
from aiaas.llm.queue_engine import QueueEngine
from aiaas.llm.sampling import sample
from aiaas.llm.seq import Seq, deliver
from aiaas.llm.threads import ThreadPolicy

log = logging.getLogger("aiaas.llm")

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class TorchEngine(QueueEngine):
    def __init__(
        self,
        path: str | Path,
        *,
        device: str | None = None,
        dtype: str = "float32",
        max_num_seqs: int = 32,
        max_num_tokens: int = 65536,
        max_waiting: int = 256,
        max_model_len: int | None = None,
        max_prefill_tokens: int = 4096,
        default_max_tokens: int = 1024,
        threads: int = 0,
        busy_threads: int = 0,
        busy_streams: int = 4,
        quantize: str = "none",
        chat_template: str | None = None,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.path = Path(path)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        self.threads = ThreadPolicy.create(threads, busy_threads, busy_streams)  # set in the scheduler thread
        t0 = time.monotonic()
        self.tokenizer: Any = AutoTokenizer.from_pretrained(self.path)
        if chat_template:
            self.tokenizer.chat_template = chat_template
        self.model = AutoModelForCausalLM.from_pretrained(
            self.path, dtype=_DTYPES[dtype], attn_implementation="sdpa"
        )
        self.model.to(self.device)  # type: ignore[arg-type]
        self.model.eval()
        self.vocab = int(self.model.get_output_embeddings().weight.shape[0])
        self.quantize = quantize
        quantize_model(self.model, quantize)
        self.load_s = time.monotonic() - t0
        cfg = self.model.config.get_text_config()
        positions = int(getattr(cfg, "max_position_embeddings", 0) or 2048)
        self.max_model_len = min(positions, max_model_len) if max_model_len else positions
        self.max_num_seqs = max_num_seqs
        self.max_num_tokens = max(max_num_tokens, self.max_model_len)  # one full-length sequence always fits
        self.max_waiting = max_waiting
        self.max_prefill_tokens = max(max_prefill_tokens, 1)
        self.default_max_tokens = default_max_tokens
        self.add_bos = True
        eos: set[int] = set()
        for src in (self.model.generation_config.eos_token_id, cfg.eos_token_id, self.tokenizer.eos_token_id):
            if isinstance(src, int):
                eos.add(src)
            elif isinstance(src, (list, tuple)):
                eos.update(int(x) for x in src)
        self.eos_ids = frozenset(eos)
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (min(eos) if eos else 0))
        # attention layout: one mask for all layers, or one per layer type (Gemma 3: sliding + full)
        layer_types = getattr(cfg, "layer_types", None)
        self.window = getattr(cfg, "sliding_window", None)
        if layer_types:
            unknown = set(layer_types) - {"full_attention", "sliding_attention"}
            if unknown:
                raise ValueError(f"the torch LLM engine does not support attention layer types {sorted(unknown)}")
            self.mask_kinds: tuple[str, ...] | None = tuple(sorted(set(layer_types)))
        else:
            self.mask_kinds = None
            if not getattr(cfg, "use_sliding_window", True):
                self.window = None
        params = inspect.signature(self.model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._logits_to_keep = "logits_to_keep" in params
        # scheduler state (the thread owns everything below except _waiting, guarded by _cv)
        self._init_queue()
        self._cache: Any = None
        self._valid: torch.Tensor | None = None  # [B, L] real (not padding) cache columns

    # -- lifecycle --------------------------------------------------------------------------------
    def close(self) -> None:
        self._shutdown()
        self._cache = self._valid = None

    def _row_device(self) -> Any:
        return self.device

    def stats(self) -> EngineStats:
        s = self._stats
        with self._cv:
            waiting = len(self._waiting)
        return EngineStats(len(self._running), waiting, self._reserved, s.steps, s.generated, s.cancelled,
                           {"batch_len": 0 if self._valid is None else int(self._valid.shape[1])})  # fmt: skip

    # -- requests (event loop side) -----------------------------------------------------------------
    def _deliver(self, events: list[tuple[Seq, Step | BaseException]]) -> None:
        deliver(events)

    # -- the scheduler thread -----------------------------------------------------------------------
    def _loop(self) -> None:
        with torch.inference_mode():
            while True:
                with self._cv:
                    if not self._wait_for_work_locked():
                        return
                    admitted = self._admit_locked()
                    want = self.threads.pick(len(self._running) + len(admitted) + len(self._waiting))
                if torch.get_num_threads() != want:  # another model's build in this process may have changed it
                    torch.set_num_threads(want)
                try:
                    self._drop([s for s in self._running if s.cancelled], cancelled=True)
                    if admitted:
                        self._prefill(admitted)
                        self._drop([s for s in self._running if s.cancelled], cancelled=True)
                    if self._running:
                        self._decode()
                except Exception as e:  # a failed step fails the sequences in it, never the engine
                    log.exception("LLM engine step failed")
                    err = InferenceError(f"generation failed: {type(e).__name__}: {e}")
                    failed = self._running + [s for s in admitted if s not in self._running]
                    self._deliver([(s, err) for s in failed])
                    self._running, self._cache, self._valid, self._reserved = [], None, None, 0

    def _admit_locked(self) -> list[Seq]:
        out: list[Seq] = []
        prefill = 0
        while self._waiting:
            seq = self._waiting[0]
            if seq.cancelled:
                self._waiting.popleft()
                self._stats.cancelled += 1
                continue
            if len(self._running) + len(out) >= self.max_num_seqs:
                break
            if self._reserved + seq.reserve > self.max_num_tokens:
                break
            if out and prefill + len(seq.prompt) > self.max_prefill_tokens:
                break
            self._waiting.popleft()
            out.append(seq)
            prefill += len(seq.prompt)
            self._reserved += seq.reserve
        return out

    def _drop(self, seqs: list[Seq], cancelled: bool = False) -> None:
        if not seqs:
            return
        gone = {s.id for s in seqs}
        keep = [i for i, s in enumerate(self._running) if s.id not in gone]
        for s in seqs:
            self._reserved -= s.reserve
        if cancelled:
            self._stats.cancelled += len(seqs)
        self._running = [self._running[i] for i in keep]
        if not keep:
            self._cache = self._valid = None
            return
        assert self._valid is not None
        idx = torch.tensor(keep, device=self.device)
        valid = self._valid.index_select(0, idx)
        live = valid.any(0).nonzero()
        start = int(live[0]) if live.numel() else 0
        self._valid = valid[:, start:]
        for layer in self._cache.layers:
            if getattr(layer, "keys", None) is None or layer.keys.numel() == 0:
                continue
            layer.keys = layer.keys.index_select(0, idx)[:, :, start:]
            layer.values = layer.values.index_select(0, idx)[:, :, start:]

    def _masks(self, valid: torch.Tensor, q: int) -> Any:
        """Attention mask(s) for ``q`` query tokens at the end of ``valid`` [B, L] (True = may attend)."""
        length = valid.shape[1]
        kpos = valid.long().cumsum(-1) - 1  # token position of each column in its own sequence
        qpos = kpos[:, length - q :]
        cols = torch.arange(length, device=valid.device)
        qcols = cols[length - q :]
        causal = cols.unsqueeze(0) <= qcols.unsqueeze(1)  # [q, L]
        base = valid.unsqueeze(1) & causal.unsqueeze(0)  # [B, q, L]
        diag = (cols.unsqueeze(0) == qcols.unsqueeze(1)).unsqueeze(0)  # a padded query attends to itself: no NaNs
        full = (base | diag).unsqueeze(1)
        if self.window is None or (self.mask_kinds is not None and "sliding_attention" not in self.mask_kinds):
            sliding = full
        else:
            near = (qpos.unsqueeze(-1) - kpos.unsqueeze(1)) < int(self.window)
            sliding = ((base & near) | diag).unsqueeze(1)
        if self.mask_kinds is None:
            return sliding if self.window is not None else full
        return {"full_attention": full, "sliding_attention": sliding}

    def _forward(self, input_ids: torch.Tensor, valid: torch.Tensor, cache: Any) -> torch.Tensor:
        q = input_ids.shape[1]
        positions = (valid.long().cumsum(-1) - 1).clamp(min=0)[:, valid.shape[1] - q :]
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": self._masks(valid, q),
            "position_ids": positions,
            self._cache_kw: cache,
            "use_cache": True,
        }
        if self._logits_to_keep:
            kwargs["logits_to_keep"] = 1
        out = self.model(**kwargs)
        return out.logits[:, -1, :]

    def _prefill(self, seqs: list[Seq]) -> None:
        from transformers import DynamicCache

        longest = max(len(s.prompt) for s in seqs)
        ids = torch.full((len(seqs), longest), self.pad_id, dtype=torch.long)
        valid = torch.zeros((len(seqs), longest), dtype=torch.bool)
        for j, s in enumerate(seqs):
            ids[j, longest - len(s.prompt) :] = torch.tensor(s.prompt, dtype=torch.long)
            valid[j, longest - len(s.prompt) :] = True
        ids, valid = ids.to(self.device), valid.to(self.device)
        cache = DynamicCache()
        logits = self._forward(ids, valid, cache)
        self._merge(seqs, cache, valid)
        self._emit(seqs, logits)

    def _merge(self, seqs: list[Seq], cache: Any, valid: torch.Tensor) -> None:
        if self._cache is None or not self._running:
            self._cache, self._valid, self._running = cache, valid, list(seqs)
            return
        assert self._valid is not None
        old_len, new_len = self._valid.shape[1], valid.shape[1]
        length = max(old_len, new_len)
        self._valid = torch.cat([_pad_left(self._valid, length, 1), _pad_left(valid, length, 1)], 0)
        for mine, theirs in zip(self._cache.layers, cache.layers, strict=False):
            if getattr(mine, "keys", None) is None or getattr(theirs, "keys", None) is None:
                continue
            mine.keys = torch.cat([_pad_left(mine.keys, length, 2), _pad_left(theirs.keys, length, 2)], 0)
            mine.values = torch.cat([_pad_left(mine.values, length, 2), _pad_left(theirs.values, length, 2)], 0)
        self._running.extend(seqs)

    def _decode(self) -> None:
        assert self._valid is not None
        ids = torch.tensor([[s.last] for s in self._running], dtype=torch.long, device=self.device)
        valid = torch.cat([self._valid, torch.ones((len(self._running), 1), dtype=torch.bool, device=self.device)], 1)
        logits = self._forward(ids, valid, self._cache)
        self._valid = valid
        self._stats.steps += 1
        self._emit(self._running, logits)

    def _emit(self, seqs: list[Seq], logits: torch.Tensor) -> None:
        tokens = sample(logits, [s.row for s in seqs])
        events: list[tuple[Seq, Step | BaseException]] = []
        done: list[Seq] = []
        for s, t in zip(seqs, tokens, strict=True):
            s.generated += 1
            s.last = t.token_id
            finish = None
            stop_ids = s.params.stop_token_ids if s.params.ignore_eos else (self.eos_ids | s.params.stop_token_ids)
            in_cache = len(s.prompt) + s.generated - 1  # the newest token is not in the cache yet
            if t.token_id in stop_ids:
                finish = "stop"
            elif s.generated >= s.params.max_tokens or in_cache + 1 >= self.max_model_len:
                finish = "length"
            events.append((s, Step([t], finish)))
            if finish is not None:
                done.append(s)
        self._stats.generated += len(events)
        self._deliver(events)
        if done:
            self._drop(done)


def _pad_left(t: torch.Tensor, length: int, dim: int) -> torch.Tensor:
    missing = length - t.shape[dim]
    if missing <= 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([torch.zeros(shape, dtype=t.dtype, device=t.device), t], dim)
