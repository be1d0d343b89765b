"""The ``redkube`` command: every process, the supervisor, and the client verbs."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable
from typing import Any

from shared.process import Runtime, run

#: process command -> module with ``Settings`` subclass ``SETTINGS`` and ``main(settings, runtime)``.
PROCESSES = {
    "apiserver": ("services.apiserver.main", "ApiServerSettings"),
    "scheduler": ("services.scheduler.main", "SchedulerSettings"),
    "controller-manager": ("services.controller_manager.main", "ControllerManagerSettings"),
    "kubelet": ("services.kubelet.main", "KubeletSettings"),
    "hollow-nodes": ("services.kubelet.hollow", "HollowSettings"),
    "proxy": ("services.proxy.main", "ProxySettings"),
}


def available(command: str) -> bool:
    module, _ = PROCESSES[command]
    try:
        importlib.import_module(module)
    except ModuleNotFoundError:
        return False
    return True


def _process_command(command: str) -> Callable[[argparse.Namespace], int]:
    def start(args: argparse.Namespace) -> int:
        module_name, settings_name = PROCESSES[command]
        module = importlib.import_module(module_name)
        settings = getattr(module, settings_name).load(args)

        async def entry(runtime: Runtime) -> None:
            await module.main(settings, runtime)

        return run(entry)

    return start


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole CLI, or just one process command (processes start without the client verbs)."""
    parser = argparse.ArgumentParser(prog="redkube", description="A small, real Kubernetes over Redis.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command, (module_name, settings_name) in PROCESSES.items():
        if only is not None and command != only:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        p = sub.add_parser(command, help=f"run the {command} process")
        getattr(module, settings_name).add_arguments(p)
        p.set_defaults(func=_process_command(command))
    if only is not None:
        return parser
    from services.redkube import client_commands, identity_commands, kubeconfig_command, up

    up.add_parser(sub)
    identity_commands.add_parsers(sub)
    kubeconfig_command.add_parsers(sub)
    client_commands.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv[0] if argv and argv[0] in PROCESSES else None)
    args = parser.parse_args(argv)
    func: Any = args.func
    result = func(args)
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
