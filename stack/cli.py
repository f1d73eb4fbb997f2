"""The ``polystack`` command: run | providers | config check | openapi | distributions | datasets."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from . import __version__
from .errors import ConfigError

log = logging.getLogger("polystack")
#: objects allocated (net) before a young-generation collection; Python's default is 700
GC_YOUNG_THRESHOLD = 10_000


def build_plan(target: str | None):
    """Run config (distribution name or file) -> validated Plan. Raises ConfigError."""
    from .config import load_run_config, resolve_config_path
    from .plugins import collect_providers, get_plugin_manager
    from .resolver import plan

    loaded = load_run_config(resolve_config_path(target))
    return plan(loaded, collect_providers(get_plugin_manager()))


def settle_memory() -> None:
    """Tune the garbage collector for serving (called once the server is up)."""
    import gc

    # what start-up made lives as long as the process: keep it out of every full collection
    # (they then scan only newer objects; traced requests made them frequent, docs/performance.md)
    gc.collect()
    gc.freeze()
    # a request leaves no cyclic garbage (tests/server/test_middleware.py), so the young
    # generation fills only with requests in flight; at the default threshold (700) 64 of
    # them set off a collection every few requests, each scanning them all (docs/performance.md)
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def _apply_env(pairs: Sequence[str]) -> None:
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--env {pair!r}: expected KEY=VALUE")
        os.environ[key] = value


def exposure_warning(host: str, port: int, api_keys: Sequence[str]) -> str | None:
    """What to warn about when the server is opened beyond this machine with no API key."""
    if _is_loopback(host) or api_keys:
        return None
    return (f"listening on {host}:{port} with no API key: anyone who can reach this port can use the server "
            "and everything it can read; set server.auth.api_keys or POLYSTACK_API_KEYS (docs/security.md)")


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _port(args: argparse.Namespace, configured: int) -> int:
    if args.port:
        return args.port
    raw = os.environ.get("POLYSTACK_PORT", "").strip()
    if not raw:
        return configured
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(f"POLYSTACK_PORT={raw!r}: expected a port number (1-65535)")
    return int(raw)


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    import uvicorn

    from .config import DEFAULT_HOST
    from .errors import StackError
    from .server import create_app
    from .server.app import api_keys_for

    _apply_env(args.env)
    the_plan = build_plan(args.target)
    server_cfg = the_plan.loaded.config.server
    port = _port(args, server_cfg.port)
    # providers that call this server's own routes (inline::braintrust) read the port here
    os.environ["POLYSTACK_PORT"] = str(port)
    host = args.host or server_cfg.host or DEFAULT_HOST
    app = create_app(the_plan)
    warning = exposure_warning(host, port, api_keys_for(the_plan))
    if warning:
        log.warning(warning)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=args.log_level,
        access_log=args.access_log,
        timeout_graceful_shutdown=args.graceful_timeout,
        ws="none",  # no WebSocket routes: skip importing a WebSocket library at start-up
    )
    server = uvicorn.Server(config)

    async def serve() -> int:
        # providers start before the port opens, so a provider that cannot
        # start is a one-line error and exit code 2, like a config error
        try:
            await app.state.stack.start(begin_background=False)
        except StackError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"polystack {__version__}: serving {the_plan.image_name} ({the_plan.loaded.source}) "
              f"on http://{host}:{port}", file=sys.stderr)
        serving = asyncio.create_task(server.serve())
        # background work (model loads) begins once the port is open, so it
        # does not slow down the server's own start-up
        while not server.started and not serving.done():
            await asyncio.sleep(0.005)
        if server.started:
            app.state.stack.begin_background()
            # a moment after the port opens: its ~60 ms pause does not hold up the first health check
            asyncio.get_running_loop().call_later(1.0, settle_memory)
        await serving
        return 0

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(serve())


def _loop_factory():
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def cmd_providers(args: argparse.Namespace) -> int:
    from .plugins import collect_providers, get_plugin_manager

    found = collect_providers(get_plugin_manager())
    rows = sorted((spec.spec.api, spec.spec.provider_type, spec.package) for spec in found.values())
    if args.json:
        print(json.dumps([{"api": a, "provider_type": t, "package": p} for a, t, p in rows], indent=2))
        return 0
    width = max([len("provider_type")] + [len(t) for _, t, _ in rows])
    api_width = max([len("api")] + [len(a) for a, _, _ in rows])
    print(f"{'api':<{api_width}}  {'provider_type':<{width}}  package")
    for api, ptype, package in rows:
        print(f"{api:<{api_width}}  {ptype:<{width}}  {package}")
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    _apply_env(args.env)
    the_plan = build_plan(args.file)
    cfg = the_plan.loaded.config
    print(
        f"OK: {the_plan.loaded.source}: image {cfg.image_name!r}, apis {', '.join(the_plan.apis) or 'none'}; "
        f"{len(the_plan.providers)} providers"
    )
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    from .server import openapi_document

    text = json.dumps(openapi_document(), indent=2)
    if args.output:
        with open(args.output, "w") as fh:
            fh.write(text + "\n")
        return 0
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `polystack openapi | head` is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def cmd_distributions(_args: argparse.Namespace) -> int:
    from .config import distribution_path, list_distributions

    for name in list_distributions():
        print(f"{name}\t{distribution_path(name)}")
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polystack", description="Llama Stack v1 server with pluggable providers")
    parser.add_argument("--version", action="version", version=f"polystack {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="serve a distribution or run config")
    run.add_argument("target", nargs="?", help="distribution name or run.yaml path (default: starter)")
    run.add_argument("--port", type=int, help="port (default: server.port of the config, else 8321)")
    run.add_argument("--host", help="interface to bind (default: server.host, else 127.0.0.1; 0.0.0.0 for all)")
    run.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="set an environment variable first")
    run.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    run.add_argument("--access-log", action="store_true", help="log every request")
    run.add_argument("--graceful-timeout", type=float, default=30.0, help="seconds to let in-flight requests finish")
    run.set_defaults(func=cmd_run)

    providers = sub.add_parser("providers", help="list every provider type and the package it came from")
    providers.add_argument("--json", action="store_true")
    providers.set_defaults(func=cmd_providers)

    config = sub.add_parser("config", help="run-config tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a run config without starting anything")
    check.add_argument("file", help="run.yaml path or distribution name")
    check.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    check.set_defaults(func=cmd_config_check)

    openapi = sub.add_parser("openapi", help="print the OpenAPI document of every declared API")
    openapi.add_argument("--output", "-o", help="write to this file instead of stdout")
    openapi.set_defaults(func=cmd_openapi)

    dists = sub.add_parser("distributions", help="list the embedded distributions")
    dists.set_defaults(func=cmd_distributions)

    from . import cli_datasets, cli_eval

    cli_datasets.add_parser(sub)
    cli_eval.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
