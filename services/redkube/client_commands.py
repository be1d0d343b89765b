"""Client verbs of the ``redkube`` CLI (apply, get, describe, delete, logs, scale, rollout, nodes).

Each verb lives in a small module of its own (``cli_<verb>.py``) exposing
``add_arguments(parser)`` and ``run(args, client) -> int``; this module wires them
into ``redkube``'s argument parser, loads the kubeconfig and turns errors into
kubectl's wording and exit codes (0 ok, 1 error, 2 bad usage).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import Any

from services.redkube.cli_client import EXIT_ERROR, Client, CliError, load_config

#: verb -> (module, help)
VERBS = {
    "apply": ("services.redkube.cli_apply", "create or update objects from manifests (-f FILE|DIR|-)"),
    "get": ("services.redkube.cli_get", "list objects as tables, YAML, JSON or names"),
    "describe": ("services.redkube.cli_describe", "show an object in detail, with its events"),
    "delete": ("services.redkube.cli_delete", "delete objects by name or from manifests"),
    "logs": ("services.redkube.cli_logs", "print a container's logs"),
    "scale": ("services.redkube.cli_scale", "set the replicas of a deployment or replica set"),
    "rollout": ("services.redkube.cli_rollout", "watch a deployment's rollout (rollout status deployment/NAME)"),
    "nodes": ("services.redkube.cli_nodes", "nodes with their pods and requested vs allocatable resources"),
}


def common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, $REDKUBE_HOME/kubeconfig)")
    parser.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")
    parser.add_argument("--request-timeout", type=float, default=30.0, help="seconds per request")


def _runner(module_name: str) -> Callable[[argparse.Namespace], int]:
    def start(args: argparse.Namespace) -> int:
        module = importlib.import_module(module_name)
        try:
            config = load_config(args.kubeconfig)
            if not getattr(args, "namespace", None):
                args.namespace = config.namespace
            with Client(config, timeout=args.request_timeout) as client:
                return int(module.run(args, client) or 0)
        except CliError as exc:
            sys.stdout.flush()
            print(exc.message, file=sys.stderr)
            return exc.code
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:
            return EXIT_ERROR

    return start


def add_parsers(sub: Any) -> None:
    for verb, (module_name, help_text) in VERBS.items():
        parser = sub.add_parser(verb, help=help_text, description=help_text)
        common_arguments(parser)
        importlib.import_module(module_name).add_arguments(parser)
        parser.set_defaults(func=_runner(module_name))


__all__ = ["VERBS", "add_parsers", "common_arguments"]
