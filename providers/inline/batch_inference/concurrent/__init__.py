"""inline::concurrent: batch inference as concurrent calls to the inference API."""

from pydantic import BaseModel, ConfigDict, Field

import stack
from stack.registry import ProviderSpec


class ConcurrentBatchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_concurrency: int = Field(4, ge=1, le=256, description="Requests of one batch in flight at once")
    max_batch_size: int = Field(1024, ge=1, description="Largest batch accepted; larger ones are a 400")


async def create(config: ConcurrentBatchConfig, context):
    from .batch import ConcurrentBatchInference

    return ConcurrentBatchInference(config, context.deps["inference"])


@stack.hookimpl
def register_providers(register):
    register(
        ProviderSpec(
            api="batch_inference",
            provider_type="inline::concurrent",
            config=ConcurrentBatchConfig,
            factory=create,
            api_dependencies=("inference",),
            description="Runs each batch through the inference API with bounded concurrency",
        )
    )
