"""``python tests/_senet_cli.py ARGS`` is ``python -m senet ARGS`` with the tiny test models
registered: the entry point of the subprocess tests (torchrun, SIGKILL and resume)."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # this checkout's senet, and the test models

from _tiny_models import tiny_models_registered  # noqa: E402

from senet.cli import main  # noqa: E402

if __name__ == "__main__":
    with tiny_models_registered():
        main()
