"""Model loads take turns in a process: a Meta checkpoint's conversion, a chat model's load and an embedding
model's load each wait while another holds the model-load lock, and all of them go on once it is free.

(CI once saw the meta-reference and sentence-transformers providers of one run config import transformers
in two threads at once; one of them failed with "partially initialized module 'transformers.utils'".)
"""

from __future__ import annotations

import asyncio

# imported here, so that without the lock both loads would be done well within the test's wait
import sentence_transformers  # noqa: F401
import transformers.convert_slow_tokenizer  # noqa: F401
import transformers.models.llama.modeling_llama  # noqa: F401

from providers.inline.inference.sentence_transformers import SentenceTransformersConfig
from providers.inline.inference.sentence_transformers import create as create_embeddings
from providers.inline.inference.transformers.meta_reference import MetaReferenceInference
from providers.inline.inference.transformers.meta_reference_config import MetaReferenceInferenceConfig
from providers.utils.inference.load_lock import MODEL_LOAD_LOCK
from stack.apis.openai import OpenAIChatCompletionRequest, OpenAIEmbeddingsRequest
from stack.registry import ProviderContext
from tests.support import build_tiny_meta_llama


async def _until(condition, seconds: float = 120.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never held")


async def test_conversion_and_an_embedding_load_wait_for_the_lock_and_then_both_serve(tmp_path):
    meta = build_tiny_meta_llama(tmp_path / "Llama3.1-8B-Instruct")
    chat = MetaReferenceInference(
        MetaReferenceInferenceConfig(model="Llama3.1-8B-Instruct", checkpoint_dir=meta.path, max_seq_len=64),
        ProviderContext(provider_id="meta", spec=None, image_name="t", data_dir=tmp_path / "data"))
    embeddings = await create_embeddings(
        SentenceTransformersConfig(), ProviderContext(provider_id="st", spec=None, image_name="t", data_dir=tmp_path))
    converted = tmp_path / "data" / "meta-reference" / "Llama3.1-8B-Instruct" / "config.json"
    try:
        MODEL_LOAD_LOCK.acquire()  # held by this (the event loop's) thread: the providers' threads must wait
        try:
            chat.start()
            embeddings.start()
            await _until(lambda: chat.workers["Llama3.1-8B-Instruct"].state == "converting")
            await asyncio.sleep(3.0)  # time enough to convert and load both tiny models, were they not waiting
            assert chat.workers["Llama3.1-8B-Instruct"].state == "converting" and not converted.exists()
            assert set((await embeddings.health()).values()) == {"loading"}
        finally:
            MODEL_LOAD_LOCK.release()
        answer = await chat.openai_chat_completion(OpenAIChatCompletionRequest(
            model="Llama3.1-8B-Instruct", messages=[{"role": "user", "content": "the cat"}], max_tokens=3))
        assert answer.choices[0].message.role == "assistant" and converted.is_file()
        model_id = next(iter(await embeddings.health()))
        vectors = await embeddings.openai_embeddings(OpenAIEmbeddingsRequest(model=model_id, input=["a cat"]))
        assert len(vectors.data[0].embedding) == 384
        assert await chat.health() == {"Llama3.1-8B-Instruct": "ready"}
        assert set((await embeddings.health()).values()) == {"ready"}
    finally:
        await chat.shutdown()
        await embeddings.shutdown()
