"""What every controller is given: the informer caches, the API client, events.

Controllers read only from the caches (shared informers, one per kind) and write
only through the API client, so validation and admission stay in the API server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from shared.bus import BusClient
from shared.events import EventRecorder
from shared.informer import Informer
from shared.process import Runtime
from shared.store import Store
from shared.workqueue import Result, WorkQueue

Reconcile = Callable[[str], Awaitable[Result | None]]


@dataclass
class Context:
    store: Store
    client: BusClient
    recorder: EventRecorder
    runtime: Runtime
    redis_url: str
    settings: Any
    informers: dict[str, Informer] = field(default_factory=dict)

    def informer(self, plural: str) -> Informer:
        """The shared informer of a kind, created on first use."""
        if plural not in self.informers:
            self.informers[plural] = Informer(self.store, plural, redis_url=self.redis_url)
        return self.informers[plural]


@dataclass
class Controller:
    """A named reconcile function and the queue that feeds it."""

    name: str
    reconcile: Reconcile
    queue: WorkQueue
    primary: str = ""  # the plural of the kind whose keys it reconciles
    workers: int = 4
