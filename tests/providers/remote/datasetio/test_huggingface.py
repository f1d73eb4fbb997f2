"""``remote::huggingface`` on datasets saved with ``save_to_disk`` (no network):
paging, filters, splits, the fetcher's allow_dirs check, and 501 for appends."""

from __future__ import annotations

import pytest

from providers.remote.datasetio.huggingface import HuggingfaceDatasetIOConfig, create
from providers.remote.datasetio.huggingface.provider import locate
from stack.apis.datasets import Dataset
from stack.errors import BadRequestError, NotFoundError
from stack.fetcher import FetchConfig, URLFetcher, URLRefusedError
from stack.registry import ProviderContext, ProviderSpec

datasets = pytest.importorskip("datasets")

SCHEMA = {"question": {"type": "string"}, "answer": {"type": "string"}}


def dataset(uri: str = "huggingface://datasets/llamastack/simpleqa", dataset_id: str = "qa", schema=SCHEMA,
            **metadata) -> Dataset:
    return Dataset.model_validate({"identifier": dataset_id, "provider_resource_id": dataset_id,
                                   "provider_id": "huggingface", "dataset_schema": schema, "url": {"uri": uri},
                                   "metadata": metadata})


@pytest.fixture
def saved(tmp_path):
    root = tmp_path / "data"
    rows = [{"question": f"q{i}", "answer": "yes" if i % 3 == 0 else "no"} for i in range(40)]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:30]),
                          "test": datasets.Dataset.from_list(rows[30:])}).save_to_disk(str(root / "qa"))
    datasets.Dataset.from_list(rows[:5]).save_to_disk(str(root / "single"))
    return root, rows


@pytest.fixture
async def provider(tmp_path, saved, store_config):
    spec = ProviderSpec(api="datasetio", provider_type="remote::huggingface", config=HuggingfaceDatasetIOConfig,
                        factory=create)
    context = ProviderContext("huggingface", spec, "test", tmp_path / "home",
                              fetcher=URLFetcher(FetchConfig(allow_dirs=[str(saved[0])])))
    impl = await create(HuggingfaceDatasetIOConfig(kvstore=store_config, max_rows_in_page=20), context)
    yield impl
    await impl.shutdown()


def test_config_as_llama_stack_writes_it():
    assert HuggingfaceDatasetIOConfig.model_validate({}).endpoint == "https://huggingface.co"


def test_locations_as_llama_stack_names_them():
    where = locate(dataset("https://huggingface.co/datasets/llamastack/evals", path="llamastack/evals",
                           name="mmlu", split="train", note="kept out"))
    assert (where.path, where.field, where.local, where.options) == (
        "llamastack/evals", "metadata.path", False, {"name": "mmlu", "split": "train"})
    where = locate(dataset("huggingface://datasets/llamastack/simpleqa?split=test"))
    assert (where.path, where.local, where.options) == ("llamastack/simpleqa", False, {"split": "test"})
    assert locate(dataset("https://huggingface.co/datasets/org/name")).path == "org/name"
    with pytest.raises(BadRequestError) as info:
        locate(dataset("ftp://example.com/x"))
    assert info.value.field == "url"


async def test_pages_of_a_split_saved_to_disk(provider, saved):
    root, rows = saved
    await provider.register_dataset(dataset(path=str(root / "qa"), split="train"))
    got, token = [], None
    while True:
        page = await provider.get_rows_paginated("qa", 7, page_token=token)
        got += page.rows
        token = page.next_page_token
        if token is None:
            break
    assert got == rows[:30] and page.total_count == 30
    page = await provider.get_rows_paginated("qa", 20, filter_condition='answer == "yes"')
    assert page.total_count == 10 and all(r["answer"] == "yes" for r in page.rows)

    await provider.register_dataset(dataset(f"file://{root / 'qa'}?split=test", dataset_id="qa-test"))
    assert (await provider.get_rows_paginated("qa-test", 20)).rows == rows[30:]
    await provider.register_dataset(dataset(str(root / "single"), dataset_id="single"))
    assert (await provider.get_rows_paginated("single", -1)).total_count == 5

    await provider.unregister_dataset(dataset(dataset_id="single"))
    with pytest.raises(NotFoundError):
        await provider.get_rows_paginated("single", 1)


async def test_bad_locations_are_400s_naming_the_field(provider, saved, tmp_path):
    root, _ = saved
    cases = [
        (dataset(path=str(root / "qa")), "metadata.split"),  # two splits, none named
        (dataset(path=str(root / "qa"), split="validation"), "metadata.split"),
        (dataset(path=str(tmp_path / "elsewhere")), "metadata.path"),  # outside allow_dirs
        (dataset(path=str(root / "missing")), "metadata.path"),
        (dataset(str(root / "single"), schema={"nope": {"type": "string"}}), "dataset_schema.nope"),
    ]
    for bad, field in cases:
        with pytest.raises(BadRequestError) as info:
            await provider.register_dataset(bad)
        assert info.value.field == field, bad.metadata
    with pytest.raises(URLRefusedError):
        await provider.register_dataset(dataset(f"file://{tmp_path}/x"))


async def test_hub_downloads_are_checked_against_server_fetch(tmp_path):
    async def loopback(host, port):
        return ["127.0.0.1"]

    spec = ProviderSpec(api="datasetio", provider_type="remote::huggingface", config=HuggingfaceDatasetIOConfig,
                        factory=create)
    context = ProviderContext("huggingface", spec, "test", tmp_path,
                              fetcher=URLFetcher(FetchConfig(), resolver=loopback))
    impl = await create(HuggingfaceDatasetIOConfig(), context)
    try:
        with pytest.raises(URLRefusedError) as info:
            await impl.register_dataset(dataset())
        assert info.value.field == "url"
    finally:
        await impl.shutdown()


def test_append_rows_is_not_served():
    from stack.plugins import collect_providers, get_plugin_manager

    registered = collect_providers(get_plugin_manager(load_entry_points=False))[("datasetio", "remote::huggingface")]
    assert registered.spec.operations() == frozenset({"get_rows_paginated"})
