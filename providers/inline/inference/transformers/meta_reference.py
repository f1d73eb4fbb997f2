"""``inline::meta-reference`` (and ``-quantized``): a Llama checkpoint found where llama-stack looks for it,
served by the inline::transformers machinery. Meta-format checkpoints are converted once into the
provider's data directory. Nothing here imports torch: loading happens in the model's worker thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stack.apis.models import Model, ModelType
from stack.errors import BadRequestError, ConflictError
from stack.registry import ProviderContext

from providers.utils.inference.llama_checkpoints import find_checkpoint, same_model
from providers.utils.inference.transformers_models import TransformersModelConfig

from ._worker import ModelLoadError, ModelUnavailableError, ModelWorker
from .config import TransformersConfig
from .inference import TransformersInference
from .meta_reference_config import MetaReferenceInferenceConfig, MetaReferenceQuantizedInferenceConfig

# llama-stack quantization type -> (dtype, transformers_loading quantization)
_QUANTIZATION = {"bf16": ("bfloat16", None), "fp8": ("auto", "fp8"), "int4": ("auto", "int4")}


class MetaModelWorker(ModelWorker):
    """A model worker that first finds the checkpoint (converting Meta's format) and then loads it."""

    def __init__(self, model_id: str, model: str, meta: MetaReferenceInferenceConfig, config: TransformersConfig,
                 data_dir: Path) -> None:
        self.model, self.meta, self.data_dir = model, meta, data_dir
        quant = getattr(meta, "quantization", None)
        self.dtype, self.quantization = _QUANTIZATION[quant.type] if quant is not None else (None, None)
        search = find_checkpoint(model, meta.checkpoint_dir)
        first_guess = search.path or Path(search.tried[0])
        super().__init__(model_id, TransformersModelConfig(path=str(first_guess), dtype=self.dtype), config)
        # listed now, replaced once found: the loop may be iterating config.models when the worker thread does that
        config.models[model_id] = self.entry

    def _load(self) -> None:  # worker thread
        search = find_checkpoint(self.model, self.meta.checkpoint_dir)  # again: files may have appeared since
        if search.path is None:
            self._fail(ModelUnavailableError, search.why_missing())
            return
        path = search.path
        if search.format == "meta":
            self.state = "converting"
            try:
                from providers.utils.inference.meta_llama_convert import convert_into_data_dir

                path = convert_into_data_dir(search.path, self.data_dir, self.model)
            except Exception as exc:  # noqa: BLE001 - a bad checkpoint is reported in health, never fatal
                self._fail(ModelLoadError, f"model {self.model_id!r}: Meta checkpoint {str(search.path)!r} could not "
                                           f"be converted: {type(exc).__name__}: {exc}")
                return
            self.state = "loading"
        self.entry = TransformersModelConfig(path=str(path), dtype=self.dtype)
        self.config.models[self.model_id] = self.entry  # where the weights are, for post-training and checks
        super()._load()

    def _load_weights(self) -> Any:  # worker thread
        import torch

        from providers.utils.inference.transformers_loading import load_model

        loaded = load_model(self.entry, self.config.device, self.config.dtype, quantization=self.quantization)
        loaded.context_length = min(loaded.context_length or self.meta.max_seq_len, self.meta.max_seq_len)
        if self.meta.torch_seed is not None:
            torch.manual_seed(self.meta.torch_seed)
            loaded.rng = torch.Generator().manual_seed(self.meta.torch_seed)
        return loaded


class MetaReferenceInference(TransformersInference):
    """One Llama model (``config.model``, else the first LLM registered) from its local checkpoint."""

    def __init__(self, meta: MetaReferenceInferenceConfig, context: ProviderContext,
                 provider_type: str = "inline::meta-reference") -> None:
        super().__init__(TransformersConfig(), context)
        self.meta, self.provider_type = meta, provider_type
        if meta.model is not None:
            self.workers[meta.model] = self._new_worker(meta.model)

    def _new_worker(self, model_id: str) -> MetaModelWorker:
        return MetaModelWorker(model_id, self.meta.model or model_id, self.meta, self.config, self.context.data_dir)

    async def register_model(self, model: Model) -> Model:
        """The configured Llama model under either of its names (llama-stack took both); with no ``model``
        in the config, the first LLM registered. Fine-tuned checkpoints (``metadata.transformers``) as
        inline::transformers registers them."""
        if "transformers" in model.metadata:
            return await super().register_model(model)
        model_id = model.provider_resource_id
        if model.model_type != ModelType.llm:
            raise BadRequestError(f"{self.provider_type} serves LLMs only", field="model_type")
        served = self._served()
        if model_id in self.workers:
            return model
        if served is None:
            self.workers[model_id] = worker = self._new_worker(model_id)
            if self._started:
                worker.start_loading()
            return model
        if same_model(model_id, served.model):
            self.workers[model_id] = served  # the other spelling of the same model: one worker
            return model
        if self.meta.model is not None:
            raise BadRequestError(f"{model_id!r} is not this {self.provider_type} provider's model "
                                  f"{self.meta.model!r} (its config's `model`)", field="provider_model_id")
        raise ConflictError(f"this {self.provider_type} provider already serves {served.model!r}: it serves one "
                            "model (set `model` in its config, or add another provider)")

    def _served(self) -> MetaModelWorker | None:
        return next((w for w in self.workers.values() if isinstance(w, MetaModelWorker)), None)

    async def unregister_model(self, model: Model) -> None:
        """Forget a name of the served model; the config's ``model`` stays loaded, another one is freed
        once no name is left for it. Fine-tuned checkpoints go as in inline::transformers."""
        model_id = model.provider_resource_id
        worker = self.workers.get(model_id)
        if not isinstance(worker, MetaModelWorker):
            await super().unregister_model(model)
            return
        if model_id == self.meta.model:
            return
        del self.workers[model_id]
        if all(w is not worker for w in self.workers.values()):
            self.config.models.pop(worker.model_id, None)
            await worker.shutdown()

    async def shutdown(self) -> None:
        for worker in {id(w): w for w in self.workers.values()}.values():
            await worker.shutdown()


async def create(config: MetaReferenceInferenceConfig, context: ProviderContext) -> MetaReferenceInference:
    return MetaReferenceInference(config, context)


async def create_quantized(config: MetaReferenceQuantizedInferenceConfig,
                           context: ProviderContext) -> MetaReferenceInference:
    return MetaReferenceInference(config, context, provider_type="inline::meta-reference-quantized")
