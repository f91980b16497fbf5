"""What a run records of where it ran: the code's git commit (dirty or not) and the CPU model."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import senet
from senet.environment import cpu_model
from senet.train import load_config, train
from senet.train.provenance import code_commit
from senet.train.summary import RunSummary

RECIPE = (
    Path(__file__).resolve().parents[1] / "senet" / "configs" / "fashion_mnist_se_resnet20.yaml"
)
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command")


def _git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "HOME": str(repo),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@needs_git
def test_the_commit_of_a_checkout_and_whether_tracked_files_changed(tmp_path):
    package = tmp_path / "clone" / "senet"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    repo = tmp_path / "clone"
    _git(repo, "init", "-q")
    _git(repo, "add", "senet/__init__.py")
    _git(repo, "commit", "-qm", "first")
    head = _git(repo, "rev-parse", "HEAD")
    assert code_commit(package) == (head, False)
    (repo / "notes.txt").write_text("untracked files do not make it dirty")
    assert code_commit(package) == (head, False)
    (package / "__init__.py").write_text("x = 1\n")
    assert code_commit(package) == (head, True)


@needs_git
def test_a_package_not_tracked_in_a_checkout_has_no_commit(tmp_path):
    # A wheel installed into a virtual environment inside a clone: the folder is in the work
    # tree, but not tracked, so the clone's commit is not the code's.
    repo = tmp_path / "clone"
    installed = repo / ".venv" / "site-packages" / "senet"
    installed.mkdir(parents=True)
    (installed / "__init__.py").write_text("")
    (repo / "README").write_text("")
    _git(repo, "init", "-q")
    _git(repo, "add", "README")
    _git(repo, "commit", "-qm", "first")
    assert code_commit(installed) == (None, None)
    outside = tmp_path / "site-packages" / "senet"
    outside.mkdir(parents=True)
    assert code_commit(outside) == (None, None)


def test_this_checkout_reports_its_own_head():
    package = Path(senet.__file__).parent
    head = subprocess.run(
        ["git", "-C", str(package), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    tracked = subprocess.run(
        ["git", "-C", str(package), "ls-files", "--error-unmatch", "__init__.py"],
        capture_output=True,
    )
    if shutil.which("git") is None or head.returncode or tracked.returncode:
        pytest.skip("senet does not run from a git checkout here")
    commit, dirty = code_commit()
    assert commit == head.stdout.strip() and isinstance(dirty, bool)


def test_the_cpu_model_is_the_model_name_line(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel\t\t: 17\n"
        "model name\t: AMD EPYC 9R14 96-Core Processor\nflags\t\t: fpu avx512_bf16\n"
    )
    assert cpu_model(cpuinfo) == "AMD EPYC 9R14 96-Core Processor"
    cpuinfo.write_text("processor\t: 0\nCPU implementer\t: 0x41\n")  # an ARM board says none
    assert cpu_model(cpuinfo) is None
    assert cpu_model(tmp_path / "absent") is None


def test_a_summary_written_before_these_fields_reads_them_as_none():
    summary = RunSummary.from_dict({"final_top1": 90.0, "host": "vm"})
    assert (summary.commit, summary.commit_dirty, summary.cpu) == (None, None, None)


def test_a_run_records_its_commit_and_cpu_in_summary_json(tmp_path, monkeypatch):
    import senet.train.job as job

    fake = {"commit": "0123abc", "commit_dirty": True, "cpu": "Test CPU 9000"}
    monkeypatch.setattr(job, "run_provenance", lambda: fake)
    tiny = [
        "data.name=synthetic",
        "data.synthetic_train=64",
        "data.train_size=64",
        "data.synthetic_val=32",
        "data.image_size=16",
        "data.batch_size=32",
        "train.epochs=1",
        "log.plots=false",
        "log.tensorboard=false",
        "log.progress=none",
        f"output_dir={tmp_path / 'run'}",
    ]
    summary = train(load_config(RECIPE, tiny))
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert {k: on_disk[k] for k in fake} == fake
    assert (summary.commit, summary.cpu) == ("0123abc", "Test CPU 9000")
