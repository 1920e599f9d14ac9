"""Shards as Ray actors: the executor of a ShardSet whose shards live on several machines.

    executor = RayExecutor(["/data/idx/shard-a-000", "/data/idx/shard-a-001"], {"nprobe": 8})
    shards = ShardSet(executor, executor.sizes, executor.has_lexical)

Each actor opens one shard's memory-mapped files where Ray placed it (the node must see that
folder; actors are spread over the nodes) and keeps an `Engine` over them; a call sends the
batch's arrays to every actor and gathers the answers. Actors are named by shard folder, shard
generation and settings, so every searcher of one snapshot (the server opens one per commit)
shares them, and a shard that changed gets a new actor. An actor whose node dies makes the call fail with ShardUnavailableError
naming the shard, never a hang or a partial ranking.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

__all__ = ["RayExecutor", "ShardUnavailableError"]

CALL_TIMEOUT = 120.0        # seconds a shard may take to answer one call


class ShardUnavailableError(RuntimeError):
    """A shard's actor died or did not answer (its node left the cluster)."""


class _ShardActor:
    """The body of one shard's actor: an Engine over the shard, answering Ranker methods."""

    def __init__(self, path: str, settings: dict):
        from indexes.search.engine import Engine
        from indexes.storage.store import IndexStore

        self.engine = Engine(IndexStore.open(path, verify=False), **settings)

    def describe(self) -> tuple[int, bool]:
        return self.engine.n_positions, self.engine.has_lexical

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def call(self, method: str, args: tuple) -> Any:
        return getattr(self.engine, method)(*args)


class RayExecutor:
    """One Ray actor per shard folder (`paths`), each with an Engine of `settings`.

    address: the Ray cluster to join (None: the one this process already joined, or a local one);
    resources: Ray resource requests per actor (default: a CPU each, or an equal share of the
    cluster's CPUs when there are more shards than CPUs, so every actor places and the scheduler
    spreads them over the nodes)."""

    def __init__(self, paths: Sequence[str], settings: dict, *, address: str | None = None,
                 resources: dict | None = None, timeout: float = CALL_TIMEOUT):
        import ray

        if not ray.is_initialized():
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        self.paths, self.timeout = list(paths), timeout
        settings = {**settings, "device": "cpu" if settings.get("device") is None else str(settings["device"])}
        share = min(1.0, float(ray.cluster_resources().get("CPU", 1.0)) / max(1, len(self.paths)))
        actor = ray.remote(**(resources or {"num_cpus": share}))(_ShardActor)
        self.actors = [actor.options(name=_actor_name(p, settings), get_if_exists=True, scheduling_strategy="SPREAD")
                       .remote(p, settings) for p in self.paths]
        described = self._gather([a.describe.remote() for a in self.actors])
        self.sizes = [n for n, _ in described]
        self.has_lexical = all(lex for _, lex in described)

    def _gather(self, refs: list) -> list:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        try:
            return ray.get(refs, timeout=self.timeout)
        except RayActorError as e:
            failed = next((self.paths[i % len(self.paths)] for i, r in enumerate(refs) if _failed(r)), "a shard")
            raise ShardUnavailableError(f"shard {failed} is unavailable (its Ray actor died: "
                                        f"{type(e).__name__}); the query was not answered") from e
        except GetTimeoutError as e:
            raise ShardUnavailableError(f"a shard did not answer within {self.timeout:.0f} s (its actor died, hangs, or "
                                        "could not be placed: the cluster lacks the resources it asks for)") from e

    def nodes(self) -> list[str]:
        """The Ray node id each shard's actor runs on."""
        return self._gather([a.node.remote() for a in self.actors])

    def call(self, method: str, per_shard_args: Sequence[tuple]) -> list[Any]:
        return self.call_many([(method, per_shard_args)])[0]

    def call_many(self, calls: Sequence[tuple[str, Sequence[tuple]]]) -> list[list[Any]]:
        refs = [[a.call.remote(method, tuple(args)) for a, args in zip(self.actors, per_shard)]
                for method, per_shard in calls]
        flat = self._gather([r for row in refs for r in row])
        return [flat[i * len(self.actors):(i + 1) * len(self.actors)] for i in range(len(calls))]


def _actor_name(path: str, settings: dict) -> str:
    """tessera-<hash of the shard folder, its manifest generation and the engine settings>."""
    from indexes.files import read_json

    generation = read_json(Path(path) / "manifest.json", f"{path}: no shard index here").get("generation")
    key = json.dumps([str(Path(path).resolve()), generation, sorted((k, str(v)) for k, v in settings.items())])
    return "tessera-" + hashlib.blake2b(key.encode(), digest_size=10).hexdigest()


def _failed(ref) -> bool:
    import ray

    try:
        ray.get(ref, timeout=0)
        return False
    except Exception:  # noqa: BLE001 - any failure marks the shard
        return True
