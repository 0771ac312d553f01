"""Backend ``hf``: transformers causal LMs (dense, MoE, SSM, quantized) behind lm-eval's interface.

Tokenization follows lm-eval's own ``hf`` model exactly (``TemplateLM._encode_pair``, the same BOS
rule, the same rolling windows), so per-sample log-likelihoods agree with lm-eval to float noise;
tests/models/test_hf_parity.py checks it. Scoring right-pads each batch, which leaves the logits of
every real token unchanged for causal attention and for state-space recurrences alike.
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from lm_eval.api.instance import Instance
from lm_eval.api.model import TemplateLM
from lm_eval.models.utils import resolve_max_length
from lm_eval.models.utils_hf import stop_sequences_criteria
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from numpy.typing import NDArray

from evalsuite.config import ModelConfig
from evalsuite.errors import BackendError
from evalsuite.models import quantize, sources
from evalsuite.models.base import BACKENDS, Architecture, Backend, LoadContext, ModelInfo, Telemetry
from evalsuite.models.telemetry import Meter, RoutingMeter

TokenRequest = tuple[Any, list[int], list[int]]  # (cache key, context tokens, continuation tokens)
SSM_TYPES = ("mamba", "mamba2", "falcon_mamba")
HYBRID_TYPES = ("jamba", "zamba", "zamba2", "bamba", "granitemoehybrid")


class HFBackend(Backend, TemplateLM):  # type: ignore[misc]
    """A loaded transformers model. Build it with :func:`load`."""

    def __init__(self, config: ModelConfig, model: Any, tokenizer: Any, info: ModelInfo) -> None:
        super().__init__()
        self.config = config
        self.model = model
        self.tokenizer = tokenizer
        self.info = info
        self.torch_device = next(model.parameters()).device
        self.max_length = info.max_length or 2048
        self.is_moe = info.architecture == "moe"
        self.is_ssm = info.architecture in ("ssm", "hybrid")
        self.meter = Meter(self.torch_device)
        if self.is_moe and info.num_experts and info.experts_per_token:
            layers = int(getattr(model.config, "num_hidden_layers", 0))
            self.meter.routing = RoutingMeter(layers, info.num_experts, info.experts_per_token)

    # -- lm-eval's tokenization hooks -------------------------------------------------------------
    @property
    def eot_token_id(self) -> int:
        return int(self.tokenizer.eos_token_id)

    @property
    def prefix_token_id(self) -> int:
        bos = self.tokenizer.bos_token_id
        return int(bos if bos is not None else self.tokenizer.eos_token_id)

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        """lm-eval's rule: an explicit flag wins, then ``add_bos_token``, then the tokenizer's default;
        never a second BOS when the text already starts with one."""
        if add_special_tokens is None:
            add_special_tokens = self.config.add_bos_token
            if string.startswith(self.tokenizer.decode(self.prefix_token_id)):
                add_special_tokens = False
        extra = {} if add_special_tokens is None else {"add_special_tokens": add_special_tokens}
        return list(self.tokenizer.encode(string, **extra))

    # -- scoring ----------------------------------------------------------------------------------
    def _loglikelihood_tokens(self, requests: list[TokenRequest], **kwargs: Any) -> list[tuple[float, bool]]:
        results: list[tuple[float, bool]] = []
        bs = self.config.batch_size
        for start in range(0, len(requests), bs):
            results.extend(self._score_batch(requests[start : start + bs]))
        return results

    @torch.inference_mode()
    def _score_batch(self, batch: Sequence[TokenRequest]) -> list[tuple[float, bool]]:
        rows, spans = [], []
        for _, context, continuation in batch:
            if not continuation:
                raise BackendError("empty continuation: nothing to score")
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
        with self.meter.scoring(int(mask.sum())):
            logits = self._forward(ids.to(self.torch_device), mask.to(self.torch_device))
        out = []
        for i, (start, end, target) in enumerate(spans):
            logprobs = F.log_softmax(logits[i, start:end].float(), dim=-1)  # (n_cont, vocab)
            wanted = torch.tensor(target, device=logprobs.device)
            total = float(logprobs.gather(1, wanted[:, None]).sum())
            greedy = bool((logprobs.argmax(dim=-1) == wanted).all())
            out.append((total, greedy))
        return out

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        kwargs: dict[str, Any] = {} if self.is_ssm else {"attention_mask": mask}
        if self.meter.routing is not None:
            kwargs["output_router_logits"] = True
        output = self.model(input_ids=ids, **kwargs)
        if self.meter.routing is not None and getattr(output, "router_logits", None) is not None:
            self.meter.routing.add(output.router_logits, mask)
        return output.logits  # type: ignore[no-any-return]  # (batch, seq, vocab)

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        """Perplexity-style scoring with lm-eval's disjoint rolling windows."""
        out = []
        for request in requests:
            (text,) = request.args
            windows = [
                (None, *make_disjoint_window(w))
                for w in get_rolling_token_windows(
                    token_list=self.tok_encode(text),
                    prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length,
                    context_len=1,
                )
            ]
            out.append(sum(score for score, _ in self._loglikelihood_tokens(windows)))
        return out

    # -- generation -------------------------------------------------------------------------------
    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        # SSMs cannot ignore left padding, so they generate one prompt at a time
        bs = 1 if self.is_ssm else self.config.batch_size
        out: list[str] = []
        for start in range(0, len(requests), bs):
            out.extend(self._generate_batch([r.args for r in requests[start : start + bs]]))
        return out

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
            text = self.tokenizer.decode(row, skip_special_tokens=True)
            for stop in until:
                if stop:
                    text = text.split(stop)[0]
            texts.append(text)
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
    def _next_token_logprobs(self, texts: Sequence[str], max_tokens: int) -> list[torch.Tensor]:
        """(tokens, vocab) float32 log-probabilities of the next token at each of the first tokens."""
        encoded = [self.tok_encode(text)[: min(max_tokens, self.max_length)] for text in texts]
        out: list[torch.Tensor] = []
        for start in range(0, len(encoded), self.config.batch_size):
            rows = encoded[start : start + self.config.batch_size]
            width = max(len(r) for r in rows)
            ids = torch.full((len(rows), width), self._pad_id(), dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for i, row in enumerate(rows):
                ids[i, : len(row)] = torch.tensor(row)
                mask[i, : len(row)] = 1
            logits = self._forward(ids.to(self.torch_device), mask.to(self.torch_device))
            out.extend(F.log_softmax(logits[i, : len(row)].float(), dim=-1) for i, row in enumerate(rows))
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


def resolve_dtype(config: ModelConfig) -> torch.dtype:
    if config.dtype == "auto":
        cuda = config.device != "cpu" and torch.cuda.is_available()
        return torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[config.dtype]


def resolve_device(config: ModelConfig) -> torch.device:
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BackendError(
            f"model {config.name!r} asks for device {config.device!r} but CUDA is not available"
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


def count_parameters(model: torch.nn.Module, experts: int | None, top_k: int | None) -> tuple[int, int]:
    """(total, active per token). For MoE only ``top_k`` of ``experts`` expert blocks run per token."""
    total = expert = 0
    for name, param in model.named_parameters():
        n = param.numel() * (2 if param.dtype == torch.uint8 and "weight" in name else 1)  # bnb 4-bit packs 2
        total += n
        if ".experts." in name:
            expert += n
    if experts and top_k:
        return total, total - expert + expert * top_k // experts
    return total, total


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
        tokenizer = AutoTokenizer.from_pretrained(location, **common)
        model: Any = AutoModelForCausalLM.from_pretrained(
            location, dtype=dtype, **common, **quantize.load_time_kwargs(config, dtype)
        )
    except (OSError, ValueError, ImportError, RuntimeError) as error:
        raise BackendError(f"model {config.name!r}: cannot load {location}: {error}") from error
    if not config.quantization.startswith("bnb-"):
        model = model.to(device)
    architecture, experts, top_k = architecture_of(model.config)
    total, active = count_parameters(model, experts, top_k)  # before torch dynamic int8 hides weights
    model = quantize.apply_post_load(model, config.quantization, device)
    model.eval()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    info = ModelInfo(
        architecture=architecture,
        model_type=str(model.config.model_type),
        parameters=total,
        active_parameters=active,
        dtype=str(dtype).removeprefix("torch."),
        quantization=config.quantization,
        weight_memory_bytes=quantize.weight_memory_bytes(model),
        fingerprint=sources.fingerprint(location, config),
        device=str(next(model.parameters()).device),
        max_length=config.max_length or resolve_max_length(model.config, tokenizer),
        num_experts=experts,
        experts_per_token=top_k,
    )
    return HFBackend(config, model, tokenizer, info)
