"""Backend ``hf``: transformers causal LMs (dense, MoE, SSM, quantized) behind lm-eval's interface.

Tokenization follows lm-eval's own ``hf`` model exactly (``TemplateLM._encode_pair``, the same BOS
rule, the same rolling windows), so per-sample log-likelihoods agree with lm-eval to float noise;
tests/models/test_hf_parity.py checks it. Scoring right-pads each batch, which leaves the logits of
every real token unchanged for causal attention and for state-space recurrences alike.
"""

from __future__ import annotations

import gc
import hashlib
import inspect
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from lm_eval.api.instance import Instance
from lm_eval.api.model import TemplateLM
from lm_eval.models.utils import resolve_max_length
from lm_eval.models.utils_hf import stop_sequences_criteria
from numpy.typing import NDArray

from evalsuite.config import ModelConfig
from evalsuite.errors import BackendError, ConfigError
from evalsuite.models import batching, kvcache, prefix, quantize, sources
from evalsuite.models.base import (
    BACKENDS,
    IDENTITIES,
    PREFLIGHT,
    Architecture,
    Backend,
    LoadContext,
    ModelInfo,
    Telemetry,
)
from evalsuite.models.telemetry import Meter, RouterCapture, RoutingMeter
from evalsuite.models.tokens import RollingByTokens, TokenizerRules, TokenRequest

PADDING = 0.03  # at most this share of a scoring batch's positions is padding
SSM_TYPES = ("mamba", "mamba2", "falcon_mamba")
HYBRID_TYPES = ("jamba", "zamba", "zamba2", "bamba", "granitemoehybrid")
T = TypeVar("T")
# Causal LMs whose logits are exactly the output layer applied to the decoder's last hidden states (no
# soft-capping or scaling in between): for them the output layer runs only at the scored positions.
PLAIN_HEAD = (
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "mixtral",
    "qwen2_moe",
    "qwen3_moe",
    "olmo",
    "olmo2",
    "olmoe",
)


class HFBackend(TokenizerRules, RollingByTokens, Backend, TemplateLM):  # type: ignore[misc]
    """A loaded transformers model. Build it with :func:`load`."""

    def __init__(
        self, config: ModelConfig, model: Any, tokenizer: Any, info: ModelInfo, seed: int = 0
    ) -> None:
        super().__init__()
        self.config = config
        self.model = model
        self.tokenizer = tokenizer
        self.info = info
        self.seed = seed
        self.torch_device = next(model.parameters()).device
        self.max_length = info.max_length or 2048
        self.is_moe = info.architecture == "moe"
        self.is_ssm = info.architecture in ("ssm", "hybrid")
        self.batch_rows = (
            auto_batch_rows(self.torch_device) if config.batch_size == "auto" else config.batch_size
        )
        self._keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
        self._decoder = _decoder_of(model) if info.model_type in PLAIN_HEAD else None
        self._plain_head = self._decoder is not None
        self._plain_cache: bool | None = None  # whether the model's cache is plain keys and values
        self._prefixes = kvcache.PrefixStore(self._run_prefix)
        self.meter = Meter(self.torch_device)
        self.routing = RouterCapture(model, info.num_experts if self.is_moe else None)
        if self.routing.gates and info.num_experts and info.experts_per_token:
            layers = len(self.routing.gates)
            self.meter.routing = RoutingMeter(layers, info.num_experts, info.experts_per_token)

    # -- scoring ----------------------------------------------------------------------------------
    def _loglikelihood_tokens(self, requests: list[TokenRequest], **kwargs: Any) -> list[tuple[float, bool]]:
        """Score each continuation after its context. Shared contexts run once (``models/prefix.py``)
        unless ``share_prefix`` is off or the model is a hybrid, whose mixed caches we do not split."""
        pairs = [(list(context), list(continuation)) for _, context, continuation in requests]
        if any(not continuation for _, continuation in pairs):
            raise BackendError("empty continuation: nothing to score")
        results: list[tuple[float, bool]] = [(0.0, False)] * len(pairs)
        if not self.config.share_prefix or self.info.architecture == "hybrid":
            alone = list(range(len(pairs)))
        else:
            rows, alone = prefix.pack(pairs, self.max_length, merge=not self.is_ssm)
            if self.is_ssm:  # stepping is sequential: worth it only when there is a context to share
                for row in rows:
                    if len(row.context) > 1:
                        self._score_recurrent(row, results)
                    else:
                        alone.extend(m.index for m in row.members)
            else:
                starts = prefix.Starts(rows)
                self._batched(
                    rows, lambda batch: self._score_packed(batch, results, starts), lambda r: r.length
                )
        singles = [(i, pairs[i]) for i in sorted(alone, key=lambda i: -sum(map(len, pairs[i])))]
        self._batched(
            singles, lambda batch: self._score_alone(batch, results), lambda s: len(s[1][0]) + len(s[1][1])
        )
        return results

    def _batched(
        self,
        items: Sequence[T],
        score: Callable[[Sequence[T]], None],
        length: Callable[[T], int] | None = None,
    ) -> None:
        """``score`` over consecutive batches; on a CUDA out-of-memory error the batch size is halved
        (for the rest of the run) and the batch retried. With ``length`` (items sorted longest first),
        a batch also ends where its padding would pass ``PADDING`` of its positions and ``PASS_COST``
        positions (below that, a pass more would cost more than the padding it saves)."""
        start = 0
        while start < len(items):
            batch = items[start : start + self.batch_rows]
            if length is not None:
                batch = batch[: prefix.fitting(list(map(length, batch)), PADDING, kvcache.PASS_COST)]
            try:
                score(batch)
            except torch.OutOfMemoryError:
                if self.torch_device.type != "cuda" or len(batch) == 1:
                    raise
                torch.cuda.empty_cache()
                self.batch_rows = max(1, len(batch) // 2)
                self.meter.oom_backoffs += 1
                continue
            start += len(batch)

    @torch.inference_mode()
    def _score_packed(
        self, rows: Sequence[prefix.Row], results: list[tuple[float, bool]], starts: prefix.Starts
    ) -> None:
        """A batch of prefix-tree rows. The prefix every row of the batch starts with (an instruction,
        few-shot examples) comes from the prefix store, computed once for all the batches that share it,
        where the rows of the call that start with it save at least ``PASS_COST`` tokens by that; the
        rows then run only what follows it. The rule looks at the call's rows, never at what is stored:
        what a batch computes must not depend on the calls before (a resumed run answers bit for bit as
        an uninterrupted one)."""
        packed = prefix.packed_batch(rows, self._pad_id())
        device = self.torch_device
        shared = prefix.shared_start(rows) if self._kv_cache() else 0
        start = starts.worth(rows[0].tokens[:shared], kvcache.PASS_COST) if shared else 0
        past = self._prefixes.get(rows[0].tokens[:start]) if start else None
        members = [m for row in rows for m in row.members]
        rows_index = torch.tensor([b for b, cols in packed.predicting for _ in cols])
        positions = torch.tensor([c - start for _, cols in packed.predicting for c in cols])
        real = packed.real[:, start:]
        with self.meter.scoring(int(real.sum())):
            logits = self._forward(
                packed.ids[:, start:].to(device),
                real.to(device),
                attention=packed.attention_mask(self._activation_dtype())[:, :, start:].to(device),
                positions=packed.positions[:, start:].to(device),
                select=(rows_index, positions),
                past=past,
            )  # (scored tokens, vocab)
        targets = [t for m in members for t in m.continuation]
        self._collect(logits, targets, [m.index for m in members], members, results)

    @torch.inference_mode()
    def _run_prefix(self, tokens: list[int], start: int, past: kvcache.KV | None) -> kvcache.KV:
        """Keys and values of a prefix (batch of one): ``tokens`` from position ``start`` after ``past``;
        the decoder alone, as no logits are wanted."""
        module = self._decoder if self._decoder is not None else self.model
        kwargs: dict[str, Any] = {"use_cache": True}
        if past is not None:
            kwargs[kvcache.cache_argument(module)] = kvcache.build_cache(past)
        device = self.torch_device
        real = torch.ones((1, len(tokens)), dtype=torch.long, device=device)
        with self.meter.scoring(len(tokens)), self.routing.capture() as router_logits:
            out = module(
                input_ids=torch.tensor([tokens], device=device),
                attention_mask=torch.ones((1, start + len(tokens)), dtype=torch.long, device=device),
                position_ids=torch.arange(start, start + len(tokens), device=device)[None],
                **kwargs,
            )
        if self.meter.routing is not None and router_logits:
            self.meter.routing.add(router_logits, real)
        return kvcache.kv_of(kvcache.cache_of(out))

    def _collect(
        self,
        logits: torch.Tensor,
        targets: list[int],
        indices: list[int],
        members: Sequence[prefix.Member],
        results: list[tuple[float, bool]],
    ) -> None:
        """Log-probability sums and greedy flags from the logits predicting each member's tokens, in order."""
        logprobs = F.log_softmax(logits.float(), dim=-1)  # (tokens, vocab)
        wanted = torch.tensor(targets, device=logprobs.device)
        chosen = logprobs.gather(1, wanted[:, None])[:, 0].double().cpu()
        greedy = (logprobs.argmax(dim=-1) == wanted).cpu()
        start = 0
        for index, member in zip(indices, members, strict=True):
            end = start + len(member.continuation)
            results[index] = (float(chosen[start:end].sum()), bool(greedy[start:end].all()))
            start = end

    @torch.inference_mode()
    def _score_recurrent(self, row: prefix.Row, results: list[tuple[float, bool]]) -> None:
        """SSMs: run the context once, copy its recurrent state to one row per continuation, and step
        the continuations through it token by token (transformers' Mamba caches decode one token at a
        time). A continuation's last token is never fed, as in the packed path."""
        device, n = self.torch_device, len(row.members)
        longest = max(len(m.continuation) for m in row.members)
        fed_tokens = len(row.context) + sum(len(m.continuation) - 1 for m in row.members)
        with self.meter.scoring(fed_tokens):  # real tokens, as elsewhere; padding steps are not counted
            out = self.model(input_ids=torch.tensor([row.context], device=device), use_cache=True)
            steps = [out.logits[:, -1].expand(n, -1)]  # the first token of every continuation
            if longest > 1:
                prefix.expand_state(out.cache_params, n)
                fed = torch.full((n, longest - 1), self._pad_id(), dtype=torch.long)
                for i, member in enumerate(row.members):
                    fed[i, : len(member.continuation) - 1] = torch.tensor(member.continuation[:-1])
                # transformers' Mamba caches read cache_position only to tell decoding from prefill and
                # clamp it to the convolution window; generate() counts from the kernel size, as here
                start = max(len(row.context), int(getattr(self.model.config, "conv_kernel", 4)))
                for t in range(longest - 1):
                    step = self.model(
                        input_ids=fed[:, t : t + 1].to(device),
                        cache_params=out.cache_params,
                        use_cache=True,
                        cache_position=torch.tensor([start + t], device=device),
                    )
                    steps.append(step.logits[:, -1])
        logits = torch.stack(steps, dim=1)  # (continuations, longest, vocab)
        rows_, cols = zip(
            *((i, t) for i, m in enumerate(row.members) for t in range(len(m.continuation))), strict=True
        )
        targets = [t for m in row.members for t in m.continuation]
        selected = logits[torch.tensor(rows_), torch.tensor(cols)]
        self._collect(selected, targets, [m.index for m in row.members], row.members, results)

    @torch.inference_mode()
    def _score_alone(
        self, batch: Sequence[tuple[int, prefix.Pair]], results: list[tuple[float, bool]]
    ) -> None:
        """One full sequence per request, truncated on the left to the model's length, as lm-eval does."""
        rows, spans = [], []
        for _, (context, continuation) in batch:
            whole = (context + continuation)[-(self.max_length + 1) :]
            inputs = whole[:-1]
            n_cont = min(len(continuation), len(inputs))
            rows.append(inputs)
            spans.append((len(inputs) - n_cont, len(inputs), continuation[-n_cont:]))
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self._pad_id(), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):  # right padding: real tokens never see a pad
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        row_index = torch.tensor([i for i, (s, e, _) in enumerate(spans) for _ in range(s, e)])
        column = torch.tensor([c for s, e, _ in spans for c in range(s, e)])
        with self.meter.scoring(int(mask.sum())):
            logits = self._forward(
                ids.to(self.torch_device), mask.to(self.torch_device), select=(row_index, column)
            )
        members = [
            prefix.Member(index, tuple(target))
            for (index, _), (_, _, target) in zip(batch, spans, strict=True)
        ]
        targets = [t for _, _, target in spans for t in target]
        self._collect(logits, targets, [m.index for m in members], members, results)

    def _forward(
        self,
        ids: torch.Tensor,
        real: torch.Tensor,
        attention: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        select: tuple[torch.Tensor, torch.Tensor] | None = None,
        past: kvcache.KV | None = None,
    ) -> torch.Tensor:
        """Logits (batch, seq, vocab), or (selected, vocab) at the (row, position) pairs of ``select``,
        where the output layer then runs only. ``real`` marks tokens (1) and padding (0); ``attention``
        overrides the padding mask with a 4-D one (over ``past``'s positions too); ``past`` holds the
        keys and values of a prefix every row continues."""
        kwargs: dict[str, Any] = {}
        if not self.is_ssm:
            kwargs["attention_mask"] = real if attention is None else attention
        if positions is not None:
            kwargs["position_ids"] = positions
        if past is not None:
            kwargs[kvcache.cache_argument(self.model)] = kvcache.build_cache(past, rows=ids.shape[0])
        with self.routing.capture() as router_logits:
            if select is not None and self._plain_head:  # the decoder, then the head where needed
                assert self._decoder is not None
                hidden = self._decoder(input_ids=ids, **kwargs).last_hidden_state
                logits = self.model.get_output_embeddings()(hidden[select[0], select[1].to(hidden.device)])
            elif select is not None and self._keeps_logits:  # the head at every position any row needs
                columns = torch.unique(select[1])  # sorted
                kept = self.model(input_ids=ids, logits_to_keep=columns.to(ids.device), **kwargs).logits
                logits = kept[select[0], torch.searchsorted(columns, select[1]).to(kept.device)]
            else:
                logits = self.model(input_ids=ids, **kwargs).logits
                if select is not None:
                    logits = logits[select[0], select[1].to(logits.device)]
        if self.meter.routing is not None and router_logits:
            self.meter.routing.add(router_logits, real)
        return logits  # type: ignore[no-any-return]

    # -- generation -------------------------------------------------------------------------------
    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        """Continuous batching with shared prefixes (``models/batching.py``) where the model's cache
        allows it and the settings are greedy or plain sampling; ``generate()`` on left-padded batches
        otherwise. SSMs cannot ignore left padding, so they generate one prompt at a time."""
        args = [r.args for r in requests]
        if self.is_ssm:
            return [text for a in args for text in self._generate_batch([a])]
        out: dict[int, str] = {}
        plans = {i: self._plan(context, settings) for i, (context, settings) in enumerate(args)}
        continuous = {i: plan for i, plan in plans.items() if plan is not None}
        if continuous and self._kv_cache():
            texts = self._generate_continuous(args, list(continuous.values()), list(continuous))
            out.update(zip(continuous, texts, strict=True))
        rest = [i for i in range(len(args)) if i not in out]
        texts = []
        self._batched([args[i] for i in rest], lambda batch: texts.extend(self._generate_batch(batch)))
        out.update(zip(rest, texts, strict=True))
        return [out[i] for i in range(len(args))]

    def _kv_cache(self) -> bool:
        if self._plain_cache is None:
            self._plain_cache = kvcache.supports(self.model)
        return self._plain_cache

    def _plan(self, context: str, settings: dict[str, Any]) -> batching.Request | None:
        """The request for continuous batching, or None where its settings need ``generate()``."""
        until, options = self._generation_options(settings)
        max_new = int(options.pop("max_new_tokens"))
        sampling = None
        if options.pop("do_sample"):
            top_k = options.pop("top_k", None)
            sampling = batching.Sampling(
                float(options.pop("temperature")), float(options.pop("top_p")), int(top_k or 0)
            )
        else:
            options = {k: v for k, v in options.items() if v is not None}
        if options or (sampling is not None and sampling.temperature <= 0):
            return None  # repetition penalties, beams, ...: generate() knows them
        tokens = self.tok_encode(context)[-max(self.max_length - max_new, 1) :]
        return batching.Request(tokens, max_new, until, sampling)

    def _generate_continuous(
        self, args: Sequence[tuple[str, dict[str, Any]]], requests: list[batching.Request], indices: list[int]
    ) -> list[str]:
        seen: dict[str, int] = {}
        for request, index in zip(requests, indices, strict=True):
            key = json.dumps(args[index], sort_keys=True, default=str)
            request.seed = batching.request_seed(self.seed, args[index], seen.get(key, 0))
            seen[key] = seen.get(key, 0) + 1
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        while True:
            generator = batching.Generator(
                self.model, self.tokenizer.decode, eos_ids, self.batch_rows, self.config.share_prefix
            )
            try:
                with self.meter.generating():
                    generated = generator.run(requests)
                break
            except torch.OutOfMemoryError:
                if self.torch_device.type != "cuda" or self.batch_rows == 1:
                    raise
                torch.cuda.empty_cache()
                self.batch_rows = max(1, self.batch_rows // 2)
                self.meter.oom_backoffs += 1
                for request in requests:
                    request.generated = []
        texts = []
        for request, tokens in zip(requests, generated, strict=True):
            self.meter.generated_tokens += len(tokens)
            texts.append(self._cut(self.tokenizer.decode(tokens, skip_special_tokens=True), request.until))
        return texts

    @staticmethod
    def _cut(text: str, until: Sequence[str]) -> str:
        for stop in until:
            if stop:
                text = text.split(stop)[0]
        return text

    @torch.inference_mode()
    def _generate_batch(self, batch: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
        settings = batch[0][1]
        if any(kwargs != settings for _, kwargs in batch):  # differing settings: one at a time
            return [text for args in batch for text in self._generate_batch([args])]
        until, options = self._generation_options(settings)
        max_new = options.pop("max_new_tokens")
        budget = max(self.max_length - max_new, 1)
        encoded = [self.tok_encode(context)[-budget:] for context, _ in batch]
        width = max(len(e) for e in encoded)
        ids = torch.full((len(encoded), width), self._pad_id(), dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for i, row in enumerate(encoded):  # left padding for generation
            ids[i, width - len(row) :] = torch.tensor(row)
            mask[i, width - len(row) :] = 1
        stopping = stop_sequences_criteria(self.tokenizer, until, width, len(encoded))
        if options["do_sample"]:  # seeded by the batch itself: a resumed run draws the same samples
            digest = hashlib.sha256(json.dumps([self.seed, batch], default=str).encode()).digest()
            torch.manual_seed(int.from_bytes(digest[:8], "little"))
        with self.meter.generating():
            generated = self.model.generate(
                input_ids=ids.to(self.torch_device),
                attention_mask=mask.to(self.torch_device),
                max_new_tokens=max_new,
                stopping_criteria=stopping,
                pad_token_id=self._pad_id(),
                use_cache=True,
                **options,
            )
        texts = []
        for row in generated[:, width:].tolist():
            self.meter.generated_tokens += len(row)
            texts.append(self._cut(self.tokenizer.decode(row, skip_special_tokens=True), until))
        return texts

    def _generation_options(self, settings: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
        """Merge a task's ``generation_kwargs`` over the model's generation defaults."""
        defaults = self.config.generation
        settings = dict(settings)
        until = settings.pop("until", None) or [self.tokenizer.decode(self.eot_token_id)]
        until = [until] if isinstance(until, str) else list(until)
        max_new = int(settings.pop("max_gen_toks", defaults.max_new_tokens))
        temperature = float(settings.pop("temperature", defaults.temperature))
        do_sample = bool(settings.pop("do_sample", temperature > 0))
        options: dict[str, Any] = {"max_new_tokens": max_new, "do_sample": do_sample}
        if do_sample:
            options["temperature"] = temperature
            options["top_p"] = float(settings.pop("top_p", defaults.top_p))
        else:
            settings.pop("top_p", None)
            options.update(temperature=None, top_p=None, top_k=None)
        options.update(settings)
        return until, options

    def _activation_dtype(self) -> torch.dtype:
        dtype = getattr(self.model, "dtype", torch.float32)
        return dtype if isinstance(dtype, torch.dtype) and dtype.is_floating_point else torch.float32

    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.eot_token_id)

    # -- next-token distributions (TokenDistributions) -------------------------------------------
    def vocabulary_id(self) -> str:
        vocab = sorted(self.tokenizer.get_vocab().items())
        return hashlib.sha256(json.dumps(vocab).encode()).hexdigest()[:32]

    def top_logprobs(
        self, texts: Sequence[str], max_tokens: int, k: int
    ) -> list[tuple[NDArray[np.int64], NDArray[np.float64]]]:
        out = []
        for logprobs in self._next_token_logprobs(texts, max_tokens):
            values, ids = logprobs.topk(min(k, logprobs.shape[-1]), dim=-1)
            out.append((ids.cpu().numpy().astype(np.int64), values.double().cpu().numpy()))
        return out

    def logprobs_at(
        self, texts: Sequence[str], max_tokens: int, ids: Sequence[NDArray[np.int64]]
    ) -> list[NDArray[np.float64]]:
        out = []
        for logprobs, wanted in zip(self._next_token_logprobs(texts, max_tokens), ids, strict=True):
            index = torch.as_tensor(wanted, device=logprobs.device)
            out.append(logprobs.gather(-1, index).double().cpu().numpy())
        return out

    @torch.inference_mode()
    def token_statistics(self, texts: Sequence[str], max_tokens: int) -> list[NDArray[np.float64]]:
        """Row t pairs the distribution after tokens[: t + 1] with tokens[t + 1]; each text is reduced
        as its batch comes, so one batch of vocabulary-wide rows is held at a time."""
        encoded = self._distribution_tokens(texts, max_tokens)
        out = []
        for tokens, logprobs in zip(encoded, self._each_next_token_logprobs(encoded), strict=True):
            targets = torch.tensor(tokens[1:], dtype=torch.long, device=logprobs.device)
            out.append(logprob_statistics(logprobs[:-1], targets))
        return out

    def _next_token_logprobs(self, texts: Sequence[str], max_tokens: int) -> list[torch.Tensor]:
        """(tokens, vocab) float32 log-probabilities of the next token at each of the first tokens."""
        return list(self._each_next_token_logprobs(self._distribution_tokens(texts, max_tokens)))

    def _distribution_tokens(self, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
        return [self.tok_encode(text)[: min(max_tokens, self.max_length)] for text in texts]

    @torch.inference_mode()
    def _each_next_token_logprobs(self, encoded: list[list[int]]) -> Iterator[torch.Tensor]:
        """``_next_token_logprobs`` one text at a time, computed a right-padded batch at a time, so that a
        caller reducing each text's rows holds one batch of vocabulary-wide rows, not every text's."""
        for start in range(0, len(encoded), self.batch_rows):
            rows = encoded[start : start + self.batch_rows]
            width = max(len(r) for r in rows)
            ids = torch.full((len(rows), width), self._pad_id(), dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for i, row in enumerate(rows):
                ids[i, : len(row)] = torch.tensor(row)
                mask[i, : len(row)] = 1
            logits = self._forward(ids.to(self.torch_device), mask.to(self.torch_device))
            for i, row in enumerate(rows):
                yield F.log_softmax(logits[i, : len(row)].float(), dim=-1)

    # -- MoE routing (ExpertRouting) -------------------------------------------------------------
    @torch.inference_mode()
    def expert_choices(self, texts: Sequence[str], max_tokens: int) -> list[NDArray[np.int64]]:
        """Per text, one at a time (no padding enters a router): the top-k experts of each token at each
        MoE layer, from the router logits the gates' forward hooks capture, sorted."""
        k = self.info.experts_per_token
        if not self.routing.gates or not k:
            return [np.zeros((0, 0, 0), dtype=np.int64) for _ in texts]
        out = []
        for text in texts:
            ids = self.tok_encode(text)[: min(max_tokens, self.max_length)]
            with self.routing.capture() as router_logits:
                self.model(input_ids=torch.tensor([ids], device=self.torch_device))
            layers = [
                logits.float().reshape(len(ids), -1).topk(k, dim=-1).indices.sort(dim=-1).values
                for logits in router_logits
            ]
            out.append(torch.stack(layers, dim=1).cpu().numpy().astype(np.int64))
        return out

    # -- evalsuite's additions --------------------------------------------------------------------
    def describe(self) -> ModelInfo:
        return self.info

    def telemetry(self) -> Telemetry:
        return self.meter.snapshot()

    def close(self) -> None:
        self.model = None
        gc.collect()
        if self.torch_device.type == "cuda":
            torch.cuda.empty_cache()


def logprob_statistics(logprobs: torch.Tensor, targets: torch.Tensor) -> NDArray[np.float64]:
    """(rows, 3): each target's log-probability in its row of ``logprobs`` (rows, vocab), and the mean
    and standard deviation of log p under that row's distribution. Products are taken in the rows'
    float32 and summed in float64 (a vocabulary is 50k to 250k terms); the variance is taken about the
    mean, never as E[(log p)^2] - mean^2, whose two terms cancel where the spread is small against the
    mean (a nearly flat distribution) and can leave a negative variance. Tokens without mass (a logit of
    -inf, or an underflowed probability) contribute nothing, not 0 * inf."""
    probs = logprobs.exp()
    held = probs > 0
    mean = torch.where(held, probs * logprobs, 0.0).sum(-1, dtype=torch.float64)
    deviation = torch.where(held, logprobs - mean.float().unsqueeze(-1), 0.0)
    variance = (probs * deviation.square()).sum(-1, dtype=torch.float64)
    chosen = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1).double()
    stacked = torch.stack([chosen, mean, variance.sqrt()], dim=-1)
    return stacked.cpu().numpy()


def resolve_dtype(config: ModelConfig) -> torch.dtype:
    if config.dtype == "auto":
        cuda = config.device != "cpu" and torch.cuda.is_available()
        return torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[config.dtype]


def auto_batch_rows(device: torch.device) -> int:
    """``batch_size: auto``: a large first guess on GPU, halved on out-of-memory; 8 on CPU, where larger
    batches do not run faster."""
    return 64 if device.type == "cuda" else 8


@PREFLIGHT.register("hf")
def preflight(config: ModelConfig) -> None:
    """Weights that can be found, a device that exists and the quantization's package, checked before
    anything loads (a GGUF file would otherwise be converted first, a CUDA model found missing only after)."""
    try:
        resolve_device(config)
    except BackendError as error:
        raise ConfigError(str(error)) from None
    quantize.check_available(config)
    sources.check_location(config)
    if config.gguf_file is None and config.path is not None:  # a checkpoint that comes quantized
        stored = quantize.prequantized(config.path, config.revision)
        if stored is not None:
            quantize.check_prequantized(config, stored)


def resolve_device(config: ModelConfig) -> torch.device:
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BackendError(
            f"model {config.name!r} asks for device {config.device!r}, but torch {torch.__version__} sees "
            "no CUDA device: use device: cpu (or auto)"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise BackendError(
            f"model {config.name!r} asks for device 'mps', but this machine has none: "
            "use device: cpu (or auto)"
        )
    return device


def architecture_of(model_config: Any) -> tuple[Architecture, int | None, int | None]:
    """(architecture, number of experts, experts per token) from a transformers config."""
    model_type = str(getattr(model_config, "model_type", ""))
    experts = getattr(model_config, "num_local_experts", None) or getattr(model_config, "num_experts", None)
    top_k = getattr(model_config, "num_experts_per_tok", None)
    if model_type in HYBRID_TYPES:
        return "hybrid", experts, top_k
    if model_type in SSM_TYPES:
        return "ssm", None, None
    if experts and top_k:
        return "moe", int(experts), int(top_k)
    return "dense", None, None


# compressed-tensors' quantization metadata, kept as parameters beside each quantized weight: not weights
QUANTIZATION_METADATA = (
    "weight_scale",
    "weight_zero_point",
    "weight_g_idx",
    "weight_global_scale",
    "weight_shape",
    "input_scale",
    "input_zero_point",
    "input_global_scale",
    "output_scale",
    "output_zero_point",
)


def count_parameters(model: torch.nn.Module, experts: int | None, top_k: int | None) -> tuple[int, int]:
    """(total, active per token). For MoE only ``top_k`` of ``experts`` expert blocks run per token.
    Quantized weights count as the weights they stand for: bitsandbytes 4-bit packs two per byte,
    compressed-tensors' ``weight_packed`` several per int32 (its ``weight_shape`` says how many in all);
    quantization scales and zero points are not counted."""
    total = expert = 0
    for name, param in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in QUANTIZATION_METADATA:
            continue
        if leaf == "weight_packed":
            shape = model.get_parameter(name.removesuffix("weight_packed") + "weight_shape")
            n = int(torch.prod(shape.detach().cpu().long()))
        else:
            n = param.numel() * (2 if param.dtype == torch.uint8 and "weight" in name else 1)  # bnb 4-bit
        total += n
        if ".experts." in name:
            expert += n
    if experts and top_k:
        return total, total - expert + expert * top_k // experts
    return total, total


def _decoder_of(model: Any) -> Any:
    """The decoder stack under the LM head, or None. transformers 4.56's generic ``get_decoder`` returns
    None for Llama-style models (it asks the inner model for its decoder); their stack is ``model.model``."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    if decoder is None:
        decoder = getattr(model, "model", None)
    return decoder if isinstance(decoder, torch.nn.Module) else None


@BACKENDS.register("hf")
def load(config: ModelConfig, context: LoadContext) -> HFBackend:
    """Load tokenizer and model (quantized as configured) and describe them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(context.seed)
    location = sources.checkpoint_location(config, context)
    device, dtype = resolve_device(config), resolve_dtype(config)
    common = {"revision": config.revision, "trust_remote_code": config.trust_remote_code}
    context.progress(f"loading {config.name}")
    try:
        # As lm-eval's HFLM: an explicit add_bos_token reaches the tokenizer, whose post-processor then adds
        # (or leaves out) BOS; transformers 5 keeps BOS only in tokenizer.json's post-processor.
        bos = {} if config.add_bos_token is None else {"add_bos_token": config.add_bos_token}
        tokenizer = AutoTokenizer.from_pretrained(location, **common, **bos)
        model: Any = AutoModelForCausalLM.from_pretrained(
            location, dtype=dtype, **common, **quantize.load_time_kwargs(config, dtype)
        )
    except (OSError, ValueError, ImportError, RuntimeError) as error:
        raise BackendError(f"model {config.name!r}: cannot load {location}: {error}") from error
    if not config.quantization.startswith("bnb-"):
        model = model.to(device)
    quantize.decompress(model)  # compressed-tensors: before the decoder is called on its own
    architecture, experts, top_k = architecture_of(model.config)
    total, active = count_parameters(model, experts, top_k)  # before torch dynamic int8 hides weights
    model = quantize.apply_post_load(model, config.quantization, device)
    stored = quantize.prequantized(location, config.revision)
    quantization = (
        quantize.describe_prequantized(stored)
        if stored is not None
        else quantize.describe(model, config.quantization)
    )
    storage = quantize.storage(model, config.quantization, stored, location, total, device)
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    info = ModelInfo(
        architecture=architecture,
        model_type=str(model.config.model_type),
        parameters=total,
        active_parameters=active,
        dtype=str(dtype).removeprefix("torch."),
        quantization=quantization,
        weight_memory_bytes=quantize.weight_memory_bytes(model),
        fingerprint=sources.fingerprint(location, config, store=context.store),
        device=str(next(model.parameters()).device),
        max_length=config.max_length or resolve_max_length(model.config, tokenizer),
        num_experts=experts,
        experts_per_token=top_k,
        weight_format=storage.weight_format,
        bits_per_weight=storage.bits_per_weight,
        group_size=storage.group_size,
        kernel=storage.kernel,
    )
    return HFBackend(config, model, tokenizer, info, context.seed)


SCORING_VERSION = 3  # raise when a change here alters answers beyond float noise: old cache entries retire
LIBRARIES = ("torch", "transformers", "tokenizers", "torchao", "bitsandbytes")


@IDENTITIES.register("hf")
def identity(config: ModelConfig, context: LoadContext) -> str:
    """Everything that changes an answer, known without loading the model: the weights and tokenizer
    files (hashed once, then remembered by size and time), dtype, quantization, device type, length and
    BOS settings, generation defaults and the library versions."""
    location = sources.checkpoint_location(config, context)
    parts = {
        "fingerprint": sources.fingerprint(location, config, store=context.store),
        "device": resolve_device(config).type,
        "max_length": config.max_length,
        "add_bos_token": config.add_bos_token,
        "trust_remote_code": config.trust_remote_code,
        "generation": config.generation.model_dump(mode="json"),
        "versions": {name: sources.version(name) for name in LIBRARIES},
        "scoring": SCORING_VERSION,
    }
    stored = quantize.prequantized(location, config.revision)
    if stored is not None:  # config.json (hashed in the fingerprint) names it; its loader's version too
        method = str(stored.get("quant_method"))
        requirement = quantize.PREQUANTIZED.get(method)
        packages = requirement.packages if requirement is not None else ()
        parts["prequantized"] = {pip: sources.version(pip) for _, pip in packages}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]
