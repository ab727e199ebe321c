"""The playground's stage thread: sets the demo's stage, keeps it while the story runs, tears it down on reset or stop."""

from __future__ import annotations

import io
import queue
import tempfile
import threading
from contextlib import ExitStack
from pathlib import Path

from devkit.demo import CAST, POLICY_DIR, set_stage
from devkit.demo.tools import Narrator
from devkit.playground.session import PLAYGROUND_SECRETS, Session, playground_catalog
from grants.catalog import load_catalog

_RESET, _STOP = "reset", "stop"


class Playground:
    """Owns the stage. One thread starts and stops it: OpenBao dies with the thread that started it
    (PR_SET_PDEATHSIG, devkit/children.py), so that thread must live exactly as long as the stage."""

    def __init__(self) -> None:
        self.session: Session | None = None
        self.generation = 0
        self.failure: BaseException | None = None
        self._jobs: queue.Queue[str] = queue.Queue()
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="playground-stage", daemon=True)
        self._work = Path(tempfile.mkdtemp(prefix="jitbot-playground-"))

    def start(self, timeout: float = 120) -> Playground:
        self._thread.start()
        self._wait_ready(0, timeout)
        return self

    def reset(self, timeout: float = 120) -> Session:
        """A fresh stage: a new OpenBao, database, stand-in and bot, so the story starts over."""
        seen = self.generation
        self._jobs.put(_RESET)
        return self._wait_ready(seen, timeout)

    def stop(self) -> None:
        self._jobs.put(_STOP)
        self._thread.join(timeout=30)
        import shutil

        shutil.rmtree(self._work, ignore_errors=True)

    def _wait_ready(self, seen: int, timeout: float) -> Session:
        with self._ready:
            self._ready.wait_for(lambda: self.failure is not None or (self.session and self.generation > seen), timeout)
        if self.failure is not None:
            raise RuntimeError(f"the playground's stage could not be set: {self.failure}") from self.failure
        if self.session is None or self.generation <= seen:
            raise TimeoutError(f"the playground's stage was not ready after {timeout:.0f}s")
        return self.session

    def _run(self) -> None:
        while True:
            with ExitStack() as stack:
                try:
                    session = self._set(stack)
                except BaseException as error:  # told to whoever waits for the stage
                    with self._ready:
                        self.failure = error
                        self._ready.notify_all()
                    return
                with self._ready:
                    self.session, self.generation = session, self.generation + 1
                    self._ready.notify_all()
                job = self._jobs.get()
                self.session = None  # requests meanwhile are told the playground is resetting
            if job == _STOP:
                return

    def _set(self, stack: ExitStack) -> Session:
        run = self._work / f"run-{self.generation + 1}"
        catalog = playground_catalog(POLICY_DIR / "catalog.toml", run / "catalog")
        stage = set_stage(stack, Narrator(CAST, out=io.StringIO()), run, catalog)
        for path, pairs in PLAYGROUND_SECRETS.items():
            stage.bao.must("kv put", path, *pairs, token=stage.operator_token)
        return Session(stage, self.generation + 1, load_catalog(catalog).settings.command)
