"""The training steps ``auto`` times: one run's (from what its job built) or a grid's (each
distinct model of its points, built here from their configs, steps summed)."""

from __future__ import annotations

import copy
import json

from senet.config import Config
from senet.train.distributed import World, resolve_device
from senet.train.setup import build_data, model_for_data
from senet.train.step_race import Workload, workload_key


def run_workload(config: Config, world: World, data: tuple, built: tuple) -> Workload:
    """The training step a run of ``config`` takes, as ``auto`` times it, from what its job
    built: ``data`` as ``build_data`` returns it, ``built`` as ``model_for_data`` does."""
    _, val_set, info, train_loader, _ = data
    model, model_kwargs, input_size, _ = built
    per_rank = len(val_set) // world.world_size
    eval_batch = config.data.eval_batch_size or 2 * config.data.batch_size
    partial_eval = per_rank > eval_batch and per_rank % eval_batch != 0
    return Workload(
        model=model,
        config=config,
        input_size=tuple(input_size),
        num_classes=info.num_classes,
        device=world.device,
        steps=config.train.epochs * len(train_loader),
        eval_graphs=1 + int(partial_eval),
        key=workload_key(config, model_kwargs, tuple(input_size), world.device, world.world_size),
    )


def config_workloads(configs: list[Config]) -> list[Workload]:
    """One workload per distinct model of ``configs`` (runs that differ only in seed, learning
    rate or the like share one), its steps summed over the runs that train it."""
    by_key: dict[str, Workload] = {}
    built: dict[str, Workload] = {}
    for config in configs:
        recipe = _without_seed(config)
        if recipe not in built:
            built[recipe] = _workload(config)
        w = built[recipe]
        key = json.dumps(w.key, sort_keys=True, default=str)
        if key in by_key:
            by_key[key].steps += w.steps
        else:
            by_key[key] = copy.copy(w)
    return list(by_key.values())


def _workload(config: Config) -> Workload:
    world = World(device=resolve_device(config.train.device))
    data = build_data(config, world)
    _, val_set, info, _, _ = data
    return run_workload(config, world, data, model_for_data(config.model, info, val_set))


def _without_seed(config: Config) -> str:
    data = config.to_dict()
    data["train"].pop("seed")
    data.pop("output_dir")
    return json.dumps(data, sort_keys=True, default=str)
