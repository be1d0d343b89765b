"""``redkube logs POD [-c C] [-f] [--previous] [--tail N]``: the pod's ``log`` subresource."""

from __future__ import annotations

import argparse
import sys

from services.redkube.cli_client import Client, resolve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pod", help="pod name (or pod/NAME)")
    parser.add_argument("-c", "--container", help="container (default: the only or first one)")
    parser.add_argument("-f", "--follow", action="store_true", help="keep streaming new output")
    parser.add_argument("-p", "--previous", action="store_true", help="the previous instance's output")
    parser.add_argument("--tail", type=int, default=-1, help="only the last N lines")


def run(args: argparse.Namespace, client: Client) -> int:
    name = args.pod.split("/", 1)[1] if "/" in args.pod else args.pod
    params: dict[str, str] = {}
    if args.container:
        params["container"] = args.container
    if args.follow:
        params["follow"] = "true"
    if args.previous:
        params["previous"] = "true"
    if args.tail >= 0:
        params["tailLines"] = str(args.tail)
    path = client.path(resolve("pods"), args.namespace, name, "log")
    with client.stream(path, params=params, accept="text/plain") as lines:
        for line in lines:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    return 0
