"""The README's 30-second tour runs as written."""

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_tour_runs():
    tour = README.split("## 30-second tour", 1)[1]
    code = re.search(r"```python\n(.*?)```", tour, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md (30-second tour)", "exec"), namespace)
    assert namespace["y"].shape == namespace["x"].shape
    assert namespace["s"].shape == (8, 256, 1, 1)
