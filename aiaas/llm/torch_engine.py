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
   as prompt + max_tokens); a new prompt whose first whole blocks of 16 tokens were prefilled before takes
   their keys and values from the prefix cache (``aiaas.llm.prefix_cache``) and reads only the rest;
3. one prefill step of at most ``max_prefill_tokens`` prompt tokens (chunked prefill): either several short
   prompts together (left-padded), or the next chunk of one long prompt on its own cache -- so a 2k-token
   prompt is read over several steps, each followed by a decode step of the running batch, and the running
   streams' inter-token latency is bounded by one chunk, not the whole prompt. Intermediate chunks skip the
   output projection. A prompt read to its end yields its first token; its cache rows are padded to the
   batch's L (or the batch to theirs) and concatenated -- this is how new requests join between decode steps;
4. one decode step for every running sequence: input [B, 1], an explicit 4D attention mask built from
   ``valid`` (and the sliding window for sliding-attention layers), per-row position ids;
5. per-row sampling (``aiaas.llm.sampling``) and delivery of the new tokens to each request's asyncio queue
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
from aiaas.llm.norms import fuse_rms_norms
from aiaas.llm.prefix_cache import PrefixCache
from aiaas.llm.quant import quantize as quantize_model
from aiaas.llm.queue_engine import EngineLimits, QueueEngine
from aiaas.llm.rotary import cache_rotary
from aiaas.llm.sampling import sample
from aiaas.llm.seq import Seq, deliver

log = logging.getLogger("aiaas.llm")

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class TorchEngine(QueueEngine):
    def __init__(
        self,
        path: str | Path,
        *,
        limits: EngineLimits | None = None,
        device: str | None = None,
        dtype: str = "float32",
        quantize: str = "none",
        prefix_cache_tokens: int = 4096,
        chat_template: str | None = None,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.path = Path(path)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        t0 = time.monotonic()
        self.tokenizer: Any = AutoTokenizer.from_pretrained(self.path)
        if chat_template:
            self.tokenizer.chat_template = chat_template
        self.model = AutoModelForCausalLM.from_pretrained(self.path, dtype=_DTYPES[dtype], attn_implementation="sdpa")
        self.model.to(self.device)  # type: ignore[arg-type]
        self.model.eval()
        self.vocab = int(self.model.get_output_embeddings().weight.shape[0])
        cfg = self.model.config.get_text_config()
        # scheduler state (the thread owns everything but _waiting, guarded by _cv): see QueueEngine
        self._init_queue(limits or EngineLimits(), int(getattr(cfg, "max_position_embeddings", 0) or 2048))
        self.quantize = quantize
        quantize_model(self.model, quantize, threads=self.threads.idle)
        fuse_rms_norms(self.model)  # one op per RMS norm instead of five to seven
        self.load_s = time.monotonic() - t0
        self.cached_rotary = cache_rotary(self.model, self.max_model_len)  # cos/sin once, indexed per step
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
        self._base = getattr(self.model, self.model.base_model_prefix, None)  # the model without its output projection
        self._cache: Any = None
        self._valid: torch.Tensor | None = None  # [B, L] real (not padding) cache columns
        self._past: dict[int, Any] = {}  # seq id -> its own cache while its prompt is read in chunks
        self.prefix_cache = PrefixCache(prefix_cache_tokens)
        self._prefill_tokens = 0  # prompt tokens run through the model (not taken from the prefix cache)

    # -- lifecycle --------------------------------------------------------------------------------
    def close(self) -> None:
        self._shutdown()
        self._cache = self._valid = None
        self._past.clear()

    def _row_device(self) -> Any:
        return self.device

    def stats(self) -> EngineStats:
        s = self._stats
        with self._cv:
            waiting = len(self._waiting)
        pc = self.prefix_cache
        extra = {
            "batch_len": 0 if self._valid is None else int(self._valid.shape[1]),
            "prefilling": len(self._prefilling),
            "prefill_tokens": self._prefill_tokens,
            "prefix_hits": pc.hits,
            "prefix_tokens_reused": pc.tokens_reused,
            "prefix_cached_tokens": pc.tokens,
        }
        return EngineStats(
            len(self._running),
            waiting + len(self._prefilling),
            self._reserved,
            s.steps,
            s.generated,
            s.cancelled,
            extra,
        )

    # -- requests (event loop side) -----------------------------------------------------------------
    def _deliver(self, events: list[tuple[Seq, Step | BaseException]]) -> None:
        deliver(events)

    # -- the scheduler thread -----------------------------------------------------------------------
    def _torch_threads(self, streams: int) -> int:
        """torch's intra-op threads for a step with ``streams`` sequences in the engine: the thread policy's,
        except with ``quantize: int8``, whose linear layers run on onnxruntime's pools (``threads.idle`` threads
        each): then torch keeps one thread, as its OpenMP workers spin after every parallel region (libgomp's
        default wait policy) and take the cores those pools need.

        Measured (Gemma-3-270M int8, 2 cores, ``bench/llm_real.py``'s engine figures, 5 runs each, medians),
        torch on 1 thread against the policy's 2: decode 29.4 -> 35.6 tok/s, 16 streams 194 -> 208 tok/s, at
        the cost of prefill (attention and masks are torch work): TTFT of 512 tokens 762 -> 869 ms, a running
        stream's longest stall while a 2,048-token prompt is read 1.2 -> 2.3 s. Two threads for prefill steps
        and one for decode steps measured no better than two throughout (decode 26.0-31.5 tok/s): not kept."""
        return 1 if self.quantize != "none" else self.threads.pick(streams)  # quantize raises off the CPU

    def _loop(self) -> None:
        with torch.inference_mode():
            while True:
                with self._cv:
                    if not self._wait_for_work_locked():
                        return
                    admitted = self._admit_locked()
                    want = self._torch_threads(len(self._running) + len(self._prefilling) + len(self._waiting))
                if torch.get_num_threads() != want:  # another model's build in this process may have changed it
                    torch.set_num_threads(want)
                try:
                    for seq in admitted:
                        self._reuse_prefix(seq)
                    self._drop_cancelled()
                    if self._prefilling:
                        self._prefill_step()
                        self._drop_cancelled()
                    if self._running:
                        self._decode()
                except Exception as e:  # a failed step fails the sequences in it, never the engine
                    log.exception("LLM engine step failed")
                    err = InferenceError(f"generation failed: {type(e).__name__}: {e}")
                    self._deliver([(s, err) for s in self._running + self._prefilling])
                    self._running, self._prefilling, self._cache, self._valid, self._reserved = [], [], None, None, 0
                    self._past.clear()

    def _admit_locked(self) -> list[Seq]:
        out: list[Seq] = []
        while self._waiting:
            seq = self._waiting[0]
            if seq.cancelled:
                self._waiting.popleft()
                self._stats.cancelled += 1
                continue
            if len(self._running) + len(self._prefilling) >= self.max_num_seqs:
                break
            if self._reserved + seq.reserve > self.max_num_tokens:
                break
            self._waiting.popleft()
            self._prefilling.append(seq)
            out.append(seq)
            self._reserved += seq.reserve
        return out

    def _reuse_prefix(self, seq: Seq) -> None:
        """Start ``seq`` from the prefix cache's longest hit: a cache of its own holding those tokens."""
        from transformers import DynamicCache

        hit = self.prefix_cache.lookup(seq.prompt)
        if hit is None:
            return
        n, kv = hit
        cache = DynamicCache()
        for i, (key, value) in enumerate(kv):
            cache.update(key, value, i)
        self._past[seq.id] = cache
        seq.fed = n

    def _drop_cancelled(self) -> None:
        gone = [s for s in self._prefilling if s.cancelled]
        if gone:
            self._prefilling = [s for s in self._prefilling if not s.cancelled]
            for s in gone:
                self._past.pop(s.id, None)
                self._reserved -= s.reserve
            self._stats.cancelled += len(gone)
        self._drop([s for s in self._running if s.cancelled], cancelled=True)

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

    def _forward(
        self, input_ids: torch.Tensor, valid: torch.Tensor, cache: Any, logits: bool = True
    ) -> torch.Tensor | None:
        """Run ``input_ids`` [B, q] on ``cache``; the last position's logits [B, V], or None (``logits`` False:
        the output projection is skipped -- an intermediate prompt chunk needs only its keys and values)."""
        q = input_ids.shape[1]
        positions = (valid.long().cumsum(-1) - 1).clamp(min=0)[:, valid.shape[1] - q :]
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": self._masks(valid, q),
            "position_ids": positions,
            self._cache_kw: cache,
            "use_cache": True,
        }
        if not logits and self._base is not None:
            self._base(**kwargs)
            return None
        if self._logits_to_keep:
            kwargs["logits_to_keep"] = 1
        out = self.model(**kwargs)
        return out.logits[:, -1, :]

    def _prefill_step(self) -> None:
        """Read at most ``max_prefill_tokens`` prompt tokens: several whole short prompts together, or the next
        chunk of the first prompt in line when it is long or already has a cache (a chunk read, a prefix hit)."""
        head = self._prefilling[0]
        budget = self.max_prefill_tokens
        if head.id in self._past or len(head.prompt) > budget:
            self._prefill_chunk(head)
            return
        group: list[Seq] = []
        total = 0
        for s in self._prefilling:
            if s.id in self._past or total + len(s.prompt) > budget:
                break
            group.append(s)
            total += len(s.prompt)
        self._prefill_group(group)

    def _prefill_group(self, seqs: list[Seq]) -> None:
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
        assert logits is not None
        self._prefill_tokens += sum(len(s.prompt) for s in seqs)
        for j, s in enumerate(seqs):
            s.fed = len(s.prompt)
            self._remember(s, cache, j, longest - len(s.prompt))
        self._prefilling = self._prefilling[len(seqs) :]
        self._merge(seqs, cache, valid)
        self._emit(seqs, logits)

    def _prefill_chunk(self, seq: Seq) -> None:
        from transformers import DynamicCache

        cache = self._past.pop(seq.id, None) or DynamicCache()
        take = min(self.max_prefill_tokens, len(seq.prompt) - seq.fed)
        ids = torch.tensor([seq.prompt[seq.fed : seq.fed + take]], dtype=torch.long, device=self.device)
        valid = torch.ones((1, seq.fed + take), dtype=torch.bool, device=self.device)
        last = seq.fed + take == len(seq.prompt)
        logits = self._forward(ids, valid, cache, logits=last)
        seq.fed += take
        self._prefill_tokens += take
        if not last:
            self._past[seq.id] = cache
            return
        assert logits is not None
        self._remember(seq, cache, 0, 0)
        self._prefilling.remove(seq)
        self._merge([seq], cache, valid)
        self._emit([seq], logits)

    def _remember(self, seq: Seq, cache: Any, row: int, start: int) -> None:
        """Offer ``seq``'s prompt (row ``row`` of ``cache``, from column ``start``) to the prefix cache."""
        if self.prefix_cache.max_tokens == 0:
            return

        def kv_of(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
            return [
                (layer.keys[row : row + 1, :, start : start + n], layer.values[row : row + 1, :, start : start + n])
                for layer in cache.layers
            ]

        self.prefix_cache.store(seq.prompt, kv_of)

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
        assert logits is not None
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
