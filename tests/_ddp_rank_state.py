"""``torchrun ... tests/_ddp_rank_state.py STATES_DIR [--resume PATH] KEY=VALUE...``: train with
``senet.train.train``, then every rank saves what it holds (its model's parameters and buffers,
its EMA copy, and its logits on the whole validation set) as ``STATES_DIR/rank{RANK}.pt``, so a
test can compare the ranks with each other and with what rank 0 wrote."""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # this checkout's senet

import torch  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402
from torch.optim.swa_utils import AveragedModel  # noqa: E402

from senet.data import create_dataset  # noqa: E402
from senet.train import load_config, train  # noqa: E402

# The modules train() builds, recorded as torch constructs them (no senet internals touched).
built: dict[str, torch.nn.Module] = {}


def _recording(cls: type, key: str) -> None:
    init = cls.__init__

    def __init__(self, module, *args, **kwargs):
        init(self, module, *args, **kwargs)
        built[key] = self

    cls.__init__ = __init__


def main() -> None:
    states, args = Path(sys.argv[1]), sys.argv[2:]
    resume = None
    if args[:1] == ["--resume"]:
        resume, args = args[1], args[2:]
    _recording(DistributedDataParallel, "ddp")
    _recording(AveragedModel, "ema")
    config = load_config(None, args)
    train(config, resume=resume)
    model = built["ddp"].module.eval()
    d = config.data
    val, _ = create_dataset(d.name, "val", synthetic_size=d.synthetic_val, image_size=d.image_size,
                            num_classes=d.num_classes, seed=config.train.seed)  # fmt: skip
    x = torch.stack([val[i][0] for i in range(len(val))])
    with torch.no_grad():
        logits = model(x)
    states.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "model": model.state_dict(),
            "ema": built["ema"].module.state_dict() if "ema" in built else None,
            "logits": logits,
            "labels": torch.tensor([int(val[i][1]) for i in range(len(val))]),
        },
        states / f"rank{os.environ['RANK']}.pt",
    )


if __name__ == "__main__":
    main()
