"""The ``llamacpp`` engine: a GGUF served by llama.cpp (through llama-cpp-python's C bindings), with the same
continuous batching, per-request sampling and streaming as the torch engine.

Install with ``make install-llamacpp`` (llama-cpp-python builds llama.cpp from source: ~15-30 min on 2 cores).

How a step works. One scheduler thread owns a llama.cpp context whose KV cache is unified (one pool of
``max_num_tokens`` cells shared by up to ``max_num_seqs`` sequences, each a llama.cpp sequence id). Each step
builds ONE ``llama_batch`` and calls ``llama_decode`` once:

* every decoding sequence contributes its last sampled token (one row of logits each) -- llama.cpp's
  multi-sequence decode, so 16 streams cost one pass over the weights, not 16;
* sequences still reading their prompt contribute the next chunk of it, at most ``max_prefill_tokens`` prompt
  tokens per step in all (chunked prefill: a 2k-token prompt is admitted over several steps while the other
  streams keep decoding, so their inter-token latency stays bounded by one chunk's compute);
* logits come back for the decode rows and for prompts whose last chunk was just read, and are sampled by
  ``aiaas.llm.sampling`` (temperature, top-k/p, penalties, seeds, logprobs per request, as in the torch engine).

Prefix caching. A finished sequence's cells are kept (up to ``prefix_cache_slots`` of them, least recently
used evicted first). A new prompt that starts with tokens already in a kept or running sequence copies those
cells (``llama_memory_seq_cp`` shares them; nothing is recomputed) and prefills only the rest: a repeated
512-token system prompt costs one chunk of new tokens instead of 512. The cache keeps full-length sliding-window
layers (``swa_full``) so a copied prefix is complete for every layer.

What a step costs (``bench/llamacpp_step.py``, Gemma-3-270M Q4_K_M, AVX2, CPU time of 1 thread, 2026-12-03):
one row 26 ms, 16 rows 189 ms -- 16 streams give at most ~2.2x one stream's tokens/s; inside this engine a
16-row ``llama_decode`` costs the same CPU time as the bare call (182 ms against 182 ms). One row reads every
weight once (memory-bound); 16 rows are compute-bound, and 63 % of the multiply-adds are the output projection
(262144 x 640, Q8_0), computed once per row: with logits for one row only, 16 rows take 94 ms (4.6x). The
cache layout is not the cost: a unified cache with flash attention (llama.cpp's choice on CPU) skips other
sequences' cells, so kept prefixes add ~5 % (2,048 cells), and per-sequence streams (``kv_unified=False``, which
also cannot share a partial prefix across streams) measured the same at 1 thread and slower at 2; flash
attention off costs +24 %. The Python side (batch filling, sampling 16 x 262144 logits) is ~1.5 % of a 16-row
step.

Tokenization is the Hugging Face tokenizer (``tokenizer.json`` next to the GGUF, else rebuilt from the GGUF's
own vocabulary by transformers) so chat templates, detokenization and stop strings are the text layer's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aiaas.errors import InferenceError
from aiaas.llm.base import EngineStats, Step
from aiaas.llm.queue_engine import EngineLimits, QueueEngine
from aiaas.llm.sampling import sample
from aiaas.llm.seq import Seq, deliver

log = logging.getLogger("aiaas.llm")

INSTALL_HINT = "make install-llamacpp (pip install 'aiaas[llamacpp]'; builds llama.cpp from source, ~15-30 min)"
_BACKEND_LOCK = threading.Lock()
_BACKEND_READY = False


def available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def _lib() -> Any:
    global _BACKEND_READY
    try:
        import llama_cpp
    except ImportError as e:
        raise ValueError(f"the llamacpp engine needs llama-cpp-python: {INSTALL_HINT}") from e
    with _BACKEND_LOCK:
        if not _BACKEND_READY:
            quiet = logging.getLogger("llama-cpp-python")  # its log callback prints everything while NOTSET
            if quiet.level == logging.NOTSET:
                quiet.setLevel(logging.ERROR)
            llama_cpp.llama_backend_init()
            _BACKEND_READY = True
    return llama_cpp


def load_tokenizer(gguf: Path, tokenizer_dir: Path | None = None) -> Any:
    from transformers import AutoTokenizer

    if tokenizer_dir is not None and (tokenizer_dir / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(str(tokenizer_dir))
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


class LlamaCppEngine(QueueEngine):
    thread_name = "aiaas-llamacpp-engine"

    def __init__(
        self,
        gguf: str | Path,
        *,
        tokenizer_dir: str | Path | None = None,
        limits: EngineLimits | None = None,
        prefix_cache_slots: int = 4,
        chat_template: str | None = None,
    ) -> None:
        lib = self._lib = _lib()
        self.path = Path(gguf)
        if not self.path.is_file():
            raise ValueError(f"no GGUF file at {self.path}")
        t0 = time.monotonic()
        self.tokenizer: Any = load_tokenizer(self.path, Path(tokenizer_dir) if tokenizer_dir else None)
        if chat_template:
            self.tokenizer.chat_template = chat_template
        mparams = lib.llama_model_default_params()
        self._model = lib.llama_model_load_from_file(str(self.path).encode(), mparams)
        if not self._model:
            raise ValueError(f"llama.cpp could not load {self.path} (not a GGUF model it supports?)")
        self._vocab = lib.llama_model_get_vocab(self._model)
        self.vocab = int(lib.llama_vocab_n_tokens(self._vocab))
        trained = int(lib.llama_model_n_ctx_train(self._model)) or 2048
        # _running: admitted sequences, prefilling (fed < len(prompt)) or decoding
        self._init_queue(limits or EngineLimits(), trained)
        self.prefix_cache_slots = max(0, prefix_cache_slots)
        self.add_bos = True
        max_num_seqs = self.max_num_seqs
        slots = max_num_seqs + self.prefix_cache_slots
        cparams = lib.llama_context_default_params()
        cparams.n_ctx = self.max_num_tokens
        cparams.n_batch = cparams.n_ubatch = self.max_prefill_tokens + max_num_seqs
        cparams.n_seq_max = slots
        cparams.n_outputs_max = slots  # one row of logits per sequence per step (a 262k vocabulary is 1 MB a row)
        cparams.n_threads = cparams.n_threads_batch = self.threads.idle
        cparams.kv_unified = True
        cparams.swa_full = True  # prefix reuse needs every layer's cells of the copied prefix
        cparams.no_perf = True
        self._ctx = lib.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            lib.llama_model_free(self._model)
            raise ValueError(f"llama.cpp could not create a context of {self.max_num_tokens} tokens for {self.path}")
        self._mem = lib.llama_get_memory(self._ctx)
        self._batch_cap = int(cparams.n_batch)
        self._batch = lib.llama_batch_init(self._batch_cap, 0, 1)
        self._n_threads = self.threads.idle
        self.load_s = time.monotonic() - t0
        eos = {int(lib.llama_vocab_eos(self._vocab)), int(lib.llama_vocab_eot(self._vocab))}
        if isinstance(self.tokenizer.eos_token_id, int):
            eos.add(self.tokenizer.eos_token_id)
        self.eos_ids = frozenset(t for t in eos if t >= 0)
        self._free_slots = list(range(slots))
        self._kept: OrderedDict[int, list[int]] = OrderedDict()  # slot -> tokens in its cells (prefix cache)
        self._prefix_hits = 0
        self._prefix_tokens = 0

    # -- lifecycle --------------------------------------------------------------------------------
    def close(self) -> None:
        self._shutdown()
        lib = self._lib
        if self._ctx:
            lib.llama_batch_free(self._batch)
            lib.llama_free(self._ctx)
            lib.llama_model_free(self._model)
            self._ctx = self._model = None

    def stats(self) -> EngineStats:
        s = self._stats
        with self._cv:
            waiting = len(self._waiting)
        extra = {
            "prefix_hits": self._prefix_hits,
            "prefix_tokens_reused": self._prefix_tokens,
            "prefix_cached_seqs": len(self._kept),
            "threads": self._n_threads,
        }
        return EngineStats(len(self._running), waiting, self._reserved, s.steps, s.generated, s.cancelled, extra)

    # -- requests (event loop side) -----------------------------------------------------------------
    # -- the scheduler thread -----------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cv:
                if not self._wait_for_work_locked():
                    return
                self._admit_locked()
                want = self.threads.pick(len(self._running) + len(self._waiting))
            if want != self._n_threads:
                self._lib.llama_set_n_threads(self._ctx, want, want)
                self._n_threads = want
            try:
                self._release([s for s in self._running if s.cancelled], cancelled=True)
                if self._running:
                    self._step()
            except Exception as e:  # a failed step fails the sequences in it, never the engine
                log.exception("llama.cpp engine step failed")
                err = InferenceError(f"generation failed: {type(e).__name__}: {e}")
                deliver([(s, err) for s in self._running])
                self._release(list(self._running), keep=False)

    def _admit_locked(self) -> None:
        while self._waiting:
            seq = self._waiting[0]
            if seq.cancelled:
                self._waiting.popleft()
                self._stats.cancelled += 1
                continue
            if len(self._running) >= self.max_num_seqs:
                break
            while self._kept and self._reserved + seq.reserve + self._kept_tokens() > self.max_num_tokens:
                self._evict()  # cached prefixes give way to live sequences
            if self._reserved + seq.reserve > self.max_num_tokens:
                break
            if not self._free_slots:
                self._evict()
            self._waiting.popleft()
            seq.slot = self._free_slots.pop()
            self._reserved += seq.reserve
            self._reuse_prefix(seq)
            self._running.append(seq)

    def _kept_tokens(self) -> int:
        return sum(len(t) for t in self._kept.values())

    def _evict(self) -> None:
        slot, _ = self._kept.popitem(last=False)
        self._lib.llama_memory_seq_rm(self._mem, slot, -1, -1)
        self._free_slots.append(slot)

    def _reuse_prefix(self, seq: Seq) -> None:
        """Copy the longest cached or running prefix of ``seq.prompt`` into its slot (all but the last prompt
        token: that one must be decoded to give the first token's logits)."""
        limit = len(seq.prompt) - 1
        best, src = 0, -1
        sources = [(slot, toks) for slot, toks in self._kept.items()]
        sources += [(s.slot, s.prompt[: s.fed]) for s in self._running if s.fed > 0]
        for slot, toks in sources:
            n = _common(toks, seq.prompt, limit)
            if n > best:
                best, src = n, slot
        if best < 16:  # not worth a copy
            return
        self._lib.llama_memory_seq_cp(self._mem, src, seq.slot, 0, best)
        seq.fed = best
        if src in self._kept:
            self._kept.move_to_end(src)
        self._prefix_hits += 1
        self._prefix_tokens += best

    def _release(self, seqs: list[Seq], cancelled: bool = False, keep: bool = True) -> None:
        if not seqs:
            return
        gone = {s.id for s in seqs}
        self._running = [s for s in self._running if s.id not in gone]
        for s in seqs:
            self._reserved -= s.reserve
            # tokens whose cells are in the cache: the prompt read so far, then every sampled token but the last
            tokens = s.prompt[: s.fed] if s.fed < len(s.prompt) else s.prompt + s.out[:-1]
            if keep and self.prefix_cache_slots and s.fed > 0:
                self._kept[s.slot] = tokens
                while len(self._kept) > self.prefix_cache_slots:
                    self._evict()
            else:
                self._lib.llama_memory_seq_rm(self._mem, s.slot, -1, -1)
                self._free_slots.append(s.slot)
        if cancelled:
            self._stats.cancelled += len(seqs)

    def _step(self) -> None:
        """One ``llama_decode``: every decoding sequence's last token, then prompt chunks within budget."""
        b = self._batch
        n = 0
        outputs: list[Seq] = []
        budget = self.max_prefill_tokens
        for s in self._running:
            if s.fed < len(s.prompt):
                continue
            pos = len(s.prompt) + s.generated - 1
            _put(b, n, s.last, pos, s.slot, True)
            n += 1
            outputs.append(s)
        for s in self._running:
            if s.fed >= len(s.prompt) or budget <= 0:
                continue
            take = min(budget, len(s.prompt) - s.fed, self._batch_cap - n)
            if take <= 0:
                break
            for i in range(s.fed, s.fed + take):
                _put(b, n, s.prompt[i], i, s.slot, False)
                n += 1
            s.fed += take
            budget -= take
            if s.fed == len(s.prompt):
                b.logits[n - 1] = True
                outputs.append(s)
        if n == 0:
            return
        b.n_tokens = n
        rc = self._lib.llama_decode(self._ctx, b)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc} (1 = no room in the KV cache)")
        self._stats.steps += 1
        ptr = self._lib.llama_get_logits(self._ctx)
        logits = np.ctypeslib.as_array(ptr, shape=(len(outputs), self.vocab))
        # output rows come in batch order: decode rows first, then finished prompts, as appended above
        self._emit(outputs, torch.from_numpy(logits))

    def _emit(self, seqs: list[Seq], logits: torch.Tensor) -> None:
        tokens = sample(logits, [s.row for s in seqs])
        events: list[tuple[Seq, Step | BaseException]] = []
        done: list[Seq] = []
        for s, t in zip(seqs, tokens, strict=True):
            s.out.append(t.token_id)
            s.generated += 1
            s.last = t.token_id
            finish = None
            stop_ids = s.params.stop_token_ids if s.params.ignore_eos else (self.eos_ids | s.params.stop_token_ids)
            if t.token_id in stop_ids:
                finish = "stop"
            elif s.generated >= s.params.max_tokens or len(s.prompt) + s.generated >= self.max_model_len:
                finish = "length"
            events.append((s, Step([t], finish)))
            if finish is not None:
                done.append(s)
        self._stats.generated += len(events)
        deliver(events)
        if done:
            self._release(done)


def _put(batch: Any, i: int, token: int, pos: int, seq_id: int, logits: bool) -> None:
    batch.token[i] = token
    batch.pos[i] = pos
    batch.n_seq_id[i] = 1
    batch.seq_id[i][0] = seq_id
    batch.logits[i] = logits


def _common(a: list[int], b: list[int], limit: int) -> int:
    n = min(len(a), len(b), limit)
    if n <= 0:
        return 0
    x, y = np.asarray(a[:n]), np.asarray(b[:n])
    diff = np.nonzero(x != y)[0]
    return int(diff[0]) if diff.size else n
