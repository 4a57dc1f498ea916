"""The workflow's MLflow relay process, started and stopped by the Snakefile's handlers in one line each
(:mod:`lightsnn.pipeline.journal` holds what the relay does). Light to import: the workflow imports it."""
from __future__ import annotations

from pathlib import Path

from lightsnn.pipeline.journal import _warn_line
class WorkflowRelay:
    """The workflow's relay process: :meth:`start` (Snakemake's ``onstart``) checks the results folder can be
    written and starts ``python -m lightsnn relay`` in the background, which stops by itself if Snakemake dies;
    :meth:`stop` (``onsuccess``, ``onerror``) lets it write what is left, so MLflow is complete when Snakemake
    returns. With ``enabled=False`` (tracking off, or jobs that write to MLflow themselves) only the check runs."""

    def __init__(self, results: str, journal: str, logs: str, enabled: bool, tracking: dict | None = None):
        self.results, self.journal, self.logs, self.enabled = results, Path(journal), Path(logs), enabled
        self.tracking = tracking  # the config's name and tracking section: where the runs table is
        self._process = None
        self._log = None

    @property
    def stop_file(self) -> Path:
        return self.journal / "relay.stop"

    @property
    def log_file(self) -> Path:
        return self.logs / "mlflow-relay.log"

    def start(self) -> None:
        import os
        import subprocess
        import sys

        from lightsnn.core.paths import output_folder

        try:
            output_folder(self.results, "workflow.results")
        except ValueError as err:  # an immutable or read-only folder: one line, not a traceback
            sys.exit(f"error: {err}")
        if not self.enabled:
            return
        self.journal.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.stop_file.unlink(missing_ok=True)
        self._log = open(self.log_file, "a")
        command = ["python", "-m", "lightsnn", "relay", "--journal", str(self.journal), "--stop-file",
                   str(self.stop_file), "--watch-pid", str(os.getpid())]
        self._process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def stop(self, timeout: float = 600, print_link: bool = False) -> None:
        """Stop the relay; ``print_link`` (after a workflow that succeeded): then print the address that opens
        the runs table in MLflow."""
        self._stop(timeout)
        if print_link:
            from lightsnn.pipeline.tracking import print_runs_table_link

            print_runs_table_link(self.tracking)

    def _stop(self, timeout: float) -> None:
        import subprocess

        if self._process is None:
            return
        self.stop_file.touch()
        try:
            code = self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            code = f"killed after {timeout:.0f} s"
        self._log.close()
        self._process = None
        if code != 0:
            _warn_line(f"warning: the MLflow relay failed ({code}; see {self.log_file}); the runs wait in "
                       f"{self.journal}: 'python -m lightsnn relay --journal {self.journal} --once' writes them")
