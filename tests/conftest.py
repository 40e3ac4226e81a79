"""Shared pytest fixtures.

Hub fixtures (names start with ``hub_``) run a Hub-compatible test server (tests/hub_server.py) and,
when installed, the Olah mirror, both on 127.0.0.1 only. huggingface_hub reads ``HF_ENDPOINT`` and
the other ``HF_*`` variables when it is imported, so they are set here, before any test module is
collected: every in-process Hub call of the test session goes to the loopback test server, never to
the internet. Subprocesses get their own environment from :func:`hub_client_env`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
HUB_SERVER_SCRIPT = Path(__file__).resolve().parent / "hub_server.py"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- environment for the in-process client: must precede any `import huggingface_hub` -------------
HUB_PORT = int(os.environ.get("HFREC_TEST_HUB_PORT") or _free_port())
HUB_ENDPOINT = f"http://127.0.0.1:{HUB_PORT}"
HUB_TOKEN = "hf_hfrecTestDummyToken"
os.environ["HF_ENDPOINT"] = HUB_ENDPOINT
os.environ["HF_TOKEN"] = HUB_TOKEN
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.pop(_var, None)
if "huggingface_hub" in sys.modules:  # imported early (a plugin?): point its constants at the test hub
    from huggingface_hub import constants as _hf_constants

    _hf_constants.ENDPOINT = HUB_ENDPOINT
    _hf_constants.HUGGINGFACE_CO_URL_TEMPLATE = HUB_ENDPOINT + "/{repo_id}/resolve/{revision}/{filename}"
    _hf_constants.HF_HUB_OFFLINE = False


@dataclass
class HubProcess:
    """A running server process (test hub or Olah) on 127.0.0.1."""

    proc: subprocess.Popen
    port: int
    root: Path
    log: Path
    extra: dict = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_hub_server(root: Path, port: int = 0, die_on: tuple[str, ...] = (), fail_after: int | None = None,
                     log: Path | None = None) -> HubProcess:
    """Starts tests/hub_server.py as its own process and waits for its port."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    log = log or root.parent / f"hub-server-{time.monotonic_ns()}.log"
    cmd = [sys.executable, str(HUB_SERVER_SCRIPT), "--root", str(root), "--port", str(port)]
    for kind in die_on:
        cmd += ["--die-on", kind]
    if fail_after is not None:
        cmd += ["--fail-after", str(fail_after)]
    with open(log, "ab") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, cwd=str(root.parent))
    line = proc.stdout.readline().decode().strip()
    if not line.isdigit():
        proc.kill()
        raise RuntimeError(f"tests/hub_server.py did not start (stdout {line!r}); log:\n{log.read_text()}")
    return HubProcess(proc, int(line), root, log)


@pytest.fixture(scope="session")
def hub_server(tmp_path_factory) -> HubProcess:
    """The session's test hub, at the endpoint this process's huggingface_hub was configured with."""
    from huggingface_hub import constants

    if constants.ENDPOINT != HUB_ENDPOINT:
        pytest.fail(f"huggingface_hub points at {constants.ENDPOINT}, not the test hub {HUB_ENDPOINT}: "
                    "it was configured before tests/conftest.py ran")
    base = tmp_path_factory.mktemp("hub")
    server = start_hub_server(base / "root", port=HUB_PORT, log=base / "server.log")
    yield server
    server.stop()


@pytest.fixture
def hub_server_factory(tmp_path):
    """Starts extra test hubs (own root and port, optional failure injection); stopped after the test."""
    started: list[HubProcess] = []

    def start(root: Path | None = None, **kwargs) -> HubProcess:
        server = start_hub_server(root or tmp_path / f"hub-{len(started)}", **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def make_hub_client_env(endpoint: str, hf_home: Path, **extra: str) -> dict:
    """Environment for a subprocess running the real huggingface_hub client against ``endpoint``."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update({
        "HF_ENDPOINT": endpoint,
        "HF_TOKEN": HUB_TOKEN,
        "HF_HOME": str(hf_home),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p),
    })
    env.update(extra)
    return env


@pytest.fixture
def hub_client_env():
    """``hub_client_env(endpoint, hf_home, **extra)``: environment for a client subprocess."""
    return make_hub_client_env


# -- Olah ---------------------------------------------------------------------------------------------
def olah_executable() -> Path | None:
    """``olah-cli`` from ``$HFREC_OLAH_CLI`` or the repo's own venv (.venv-olah, made by tests/olah_setup.sh)."""
    candidates = [os.environ.get("HFREC_OLAH_CLI"), REPO_ROOT / ".venv-olah" / "bin" / "olah-cli",
                  shutil.which("olah-cli")]
    for cand in candidates:
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return Path(cand)
    return None


def _wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@pytest.fixture(scope="session")
def hub_olah(hub_server, tmp_path_factory) -> HubProcess:
    """Olah, offline, serving the test hub's repositories (bare git repos) as its mirror directory.

    Installs Olah with tests/olah_setup.sh when missing; if that fails it skips, and under CI (CI=true) fails.
    """
    exe = olah_executable()
    if exe is None:  # first run on a fresh machine: install it from PyPI into .venv-olah (about 20 s)
        setup = subprocess.run(["bash", str(REPO_ROOT / "tests" / "olah_setup.sh")], capture_output=True, text=True)
        exe = olah_executable()
        if exe is None:
            message = ("Olah is not installed and tests/olah_setup.sh failed "
                       f"({setup.stderr.strip()[-300:]}); run it by hand or set HFREC_OLAH_CLI")
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
    base = tmp_path_factory.mktemp("olah")
    port = _free_port()
    config = base / "olah.toml"
    config.write_text(
        "[basic]\n"
        'host = "127.0.0.1"\n'
        f"port = {port}\n"
        f'repos-path = "{base / "cache"}"\n'
        'mirror-scheme = "http"\n'
        f'mirror-netloc = "127.0.0.1:{port}"\n'
        f'mirror-lfs-netloc = "127.0.0.1:{port}"\n'
        f'mirrors-path = ["{hub_server.root}"]\n'
        "\n[accessibility]\n"
        "offline = true\n"
    )
    log = base / "olah.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([str(exe), "-c", str(config)], stdout=out, stderr=subprocess.STDOUT, cwd=str(base))
    server = HubProcess(proc, port, hub_server.root, log)
    try:
        _wait_http(f"{server.endpoint}/", proc, timeout=60)
    except Exception as err:
        server.stop()
        pytest.fail(f"Olah did not start: {err}\n{server.log_text()[-3000:]}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    """A tiny RecBole atomic benchmark: 60 users walking a ring of 50 titled items (item i then i+1) with some
    noise; learnable, not trivial. Used with ``--dataset atomic --data_dir``."""
    import numpy as np

    folder = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for user in range(60):
        start = int(rng.integers(0, 50))
        for t in range(int(rng.integers(8, 16))):
            item = (start + t) % 50 if rng.random() > 0.15 else int(rng.integers(0, 50))
            lines.append(f"u{user}\ti{item}\t{1000 + t}")
    (folder / "tiny.inter").write_text("\n".join(lines) + "\n")
    items = ["item_id:token\ttitle:token_seq"] + [f"i{i}\tItem number {i}" for i in range(50)]
    (folder / "tiny.item").write_text("\n".join(items) + "\n")
    return folder


def accelerate_cpu_launch(script, *args, num_processes: int = 2) -> subprocess.CompletedProcess:
    """Run ``script`` under ``accelerate launch`` in ``num_processes`` CPU processes (gloo).

    ``accelerate launch --cpu --num_processes N`` starts ONE process (its simple launcher); several CPU processes
    need the torchrun launcher (``--multi_gpu``) with ``ACCELERATE_USE_CPU=true``, which Trainer reads."""
    with socket.socket() as sock:  # a free port for this run's rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(num_processes),
         "--num_machines", "1", "--main_process_port", str(port), "--mixed_precision", "no", "--dynamo_backend", "no",
         str(script), *map(str, args)],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"})
