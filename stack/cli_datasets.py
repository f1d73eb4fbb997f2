"""``polystack datasets register | list | rows``: datasets of a running server, over HTTP.

The server is ``--stack`` or ``$POLYSTACK_URL`` (default http://127.0.0.1:8321);
``$POLYSTACK_API_KEY`` is sent as a bearer token when set. (``--url`` is the
dataset's URL, as in the API.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Iterator

DEFAULT_STACK_URL = "http://127.0.0.1:8321"
PAGE = 500  # rows asked for per request by `rows`


class _Failed(Exception):
    pass


def _client(args: argparse.Namespace):
    import httpx

    key = os.environ.get("POLYSTACK_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=args.stack or os.environ.get("POLYSTACK_URL") or DEFAULT_STACK_URL,
                        headers=headers, timeout=args.timeout)


def _call(args: argparse.Namespace, method: str, path: str, **kwargs: Any) -> Any:
    import httpx

    try:
        with _client(args) as client:
            response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise _Failed(f"cannot reach the server at {args.stack or os.environ.get('POLYSTACK_URL') or DEFAULT_STACK_URL}: "
                      f"{exc}") from None
    if response.status_code >= 400:
        try:
            message = response.json().get("detail", response.text)
        except ValueError:
            message = response.text
        raise _Failed(f"HTTP {response.status_code}: {message}")
    return response.json() if response.content else None


def parse_schema(text: str) -> dict[str, dict[str, str]]:
    """``--schema``: a JSON object of ParamTypes, or ``name:type,name:type``."""
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise _Failed(f"--schema is not valid JSON: {exc}") from None
        return {k: ({"type": v} if isinstance(v, str) else v) for k, v in value.items()}
    schema = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, kind = part.partition(":")
        if not sep or not name or not kind:
            raise _Failed(f"--schema: {part!r} is not name:type (e.g. question:string)")
        schema[name.strip()] = {"type": kind.strip()}
    return schema


def cmd_register(args: argparse.Namespace) -> None:
    body: dict[str, Any] = {"dataset_id": args.dataset_id, "url": {"uri": args.url},
                            "dataset_schema": parse_schema(args.schema)}
    if args.provider_id:
        body["provider_id"] = args.provider_id
    if args.metadata:
        try:
            body["metadata"] = json.loads(args.metadata)
        except ValueError as exc:
            raise _Failed(f"--metadata is not valid JSON: {exc}") from None
    _call(args, "POST", "/v1/datasets", json=body)
    print(f"registered {args.dataset_id}")


def cmd_list(args: argparse.Namespace) -> None:
    for dataset in _call(args, "GET", "/v1/datasets")["data"]:
        columns = ",".join(f"{k}:{v['type']}" for k, v in dataset["dataset_schema"].items())
        print(f"{dataset['identifier']}\t{dataset['provider_id']}\t{dataset['url']['uri']}\t{columns}")


def _rows(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    token, left = None, args.limit
    while left is None or left > 0:
        params: dict[str, Any] = {"dataset_id": args.dataset_id, "rows_in_page": min(PAGE, left or PAGE)}
        if token:
            params["page_token"] = token
        if args.filter:
            params["filter_condition"] = args.filter
        page = _call(args, "GET", "/v1/datasetio/rows", params=params)
        yield from page["rows"]
        if left is not None:
            left -= len(page["rows"])
        token = page.get("next_page_token")
        if not token:
            return


def cmd_rows(args: argparse.Namespace) -> None:
    for row in _rows(args):
        print(json.dumps(row, ensure_ascii=False))


def _run(func):
    def run(args: argparse.Namespace) -> int:
        try:
            func(args)
        except _Failed as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0

    return run


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``datasets`` command and its subcommands."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--stack", metavar="URL", help=f"the server (default: $POLYSTACK_URL, else {DEFAULT_STACK_URL})")
    common.add_argument("--timeout", type=float, default=60.0, help="seconds per request")

    datasets = sub.add_parser("datasets", help="register, list and read datasets of a running server")
    commands = datasets.add_subparsers(dest="datasets_command", required=True)

    register = commands.add_parser("register", parents=[common], help="register a dataset")
    register.add_argument("dataset_id")
    register.add_argument("--url", required=True, help="the dataset's file: absolute path, file://, http(s):// or data:")
    register.add_argument("--schema", required=True,
                          help="column types: name:type,name:type (string, number, boolean, ...) or a JSON object")
    register.add_argument("--provider-id", help="the datasetio provider (needed when several are configured)")
    register.add_argument("--metadata", help="a JSON object (e.g. '{\"format\": \"csv\"}')")
    register.set_defaults(func=_run(cmd_register))

    listing = commands.add_parser("list", parents=[common], help="list the registered datasets (tab-separated)")
    listing.set_defaults(func=_run(cmd_list))

    rows = commands.add_parser("rows", parents=[common], help="print a dataset's rows as JSON lines")
    rows.add_argument("dataset_id")
    rows.add_argument("--limit", type=int, help="at most this many rows (default: all)")
    rows.add_argument("--filter", help="a filter_condition, e.g. 'answer == \"yes\"'")
    rows.set_defaults(func=_run(cmd_rows))
