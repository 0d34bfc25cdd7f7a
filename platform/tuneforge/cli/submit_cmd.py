"""``tuneforge submit`` and ``tuneforge jobs list|status|logs|stop``: runs on a Ray cluster's job API.

Run from the repository root, as ``ray job submit --working-dir .``: that directory is what reaches the
cluster (the job's config and the data files it names must be inside it).

The job is ``jobs/finetune.py`` (or ``jobs/sweep.py``) with ``--json``; the runtime environment ships
the library and points the job at shared storage and the tracking server (``distributed/submit.py``).
``--wait`` and ``--follow`` end with the job's verdict: exit 0 only when it trained, so a job that
"succeeded" without a single optimizer step fails the command.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from tuneforge.cli._common import JsonFlag, TrackingUri, console, fail
from tuneforge.cli.errors import user_errors
from tuneforge.frontend import offline_defaults, print_json_line

if TYPE_CHECKING:
    from tuneforge.distributed.submit import Verdict

Address = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="Ray job API (dashboard) URL (default: $RAY_API_SERVER_ADDRESS, an http $RAY_ADDRESS, "
        "else http://127.0.0.1:8265).",
    ),
]

jobs_app = typer.Typer(no_args_is_help=True, help="List, inspect and stop jobs on a Ray cluster.")


def _client(address: str | None) -> tuple[str, Any]:
    from tuneforge.distributed.submit import client, job_address

    url = job_address(address)
    return url, client(url)


def _status_of(job_client: Any, job_id: str) -> Any:
    """The job's info, or one line when the id is unknown (Ray raises a bare RuntimeError)."""
    try:
        return job_client.get_job_info(job_id)
    except RuntimeError as e:
        raise ValueError(f"job {job_id}: {str(e).strip().splitlines()[0]}") from None


def _echo(text: str) -> None:
    """Stream job log text to stdout as it arrives."""
    sys.stdout.write(text)
    sys.stdout.flush()


def _judge(job_client: Any, job_id: str) -> tuple[str, Verdict | None]:
    """The job's status, and for a finished tuneforge job (its metadata names the kind) the verdict."""
    from tuneforge.distributed.submit import TERMINAL, verdict

    info = _status_of(job_client, job_id)
    status = str(info.status.value)
    kind = (info.metadata or {}).get("tuneforge.kind")
    if status not in TERMINAL or kind is None:
        return status, None
    return status, verdict(kind, status, job_client.get_job_logs(job_id), info.message)


def _finish(job_client: Any, job_id: str, as_json: bool) -> None:
    """Judge a finished job; print its verdict (and the summary with --json); exit 1 unless it trained."""
    _, result = _judge(job_client, job_id)
    assert result is not None  # submitted by tuneforge and waited for: terminal, with its kind
    line = f"job {job_id}: {result.reason}"
    if as_json:
        print_json_line(
            {"job_id": job_id, "ok": result.ok, "reason": result.reason, "summary": result.summary}
        )
    if not result.ok:
        fail(line)
    console.print(f"[green]done[/green] {line}", highlight=False, soft_wrap=True)


def register_submit_command(app: typer.Typer) -> None:
    """Attach ``submit`` and the ``jobs`` group to the top-level app."""

    @app.command()
    def submit(
        config: Path = typer.Argument(..., help="Job (or, with --sweep, sweep) YAML inside this repository."),
        overrides: list[str] = typer.Argument(None, help="key.sub=value overrides"),
        address: Address = None,
        sweep: bool = typer.Option(False, "--sweep", help="Submit a Ray Tune sweep (jobs/sweep.py)."),
        name: str | None = typer.Option(None, "--name", help="Sweep name (with --sweep)."),
        resume: bool = typer.Option(False, "--resume", help="Continue the sweep --name (with --sweep)."),
        storage: str | None = typer.Option(
            None,
            "--storage",
            help="Shared storage every node reads and writes (default: $TUNEFORGE_STORAGE).",
        ),
        tracking_uri: TrackingUri = None,
        entrypoint: str | None = typer.Option(
            None,
            "--entrypoint",
            help="Your own job script instead of jobs/finetune.py (prints the JSON summary).",
        ),
        wait: bool = typer.Option(False, "--wait", help="Wait for the job; exit 1 unless it trained."),
        follow: bool = typer.Option(
            False, "--follow", help="Stream the job's logs while waiting (implies --wait)."
        ),
        as_json: JsonFlag = False,
    ) -> None:
        """Submit a run (or a sweep) to a Ray cluster, shipping this checkout's library with it."""
        offline_defaults()
        with user_errors():
            from tuneforge.distributed.submit import build_submission, shared_storage
            from tuneforge.distributed.submit import submit as submit_job

            if sweep:  # a bad config fails here, not minutes later on the cluster
                from tuneforge.tune.config import load_sweep

                load_sweep(config, overrides or [])
            else:
                from tuneforge.config import load_config

                load_config(config, overrides or [])
            sub = build_submission(
                config, overrides or [], root=Path.cwd(), storage=shared_storage(storage), sweep=sweep,
                tracking_uri=tracking_uri, name=name, resume=resume, entrypoint=entrypoint,
            )  # fmt: skip
            url, job_client = _client(address)
            job_id = submit_job(job_client, sub)
        console.print(f"submitted {job_id} to {url}", highlight=False, soft_wrap=True)
        if not (wait or follow):
            if as_json:
                print_json_line({"job_id": job_id, "address": url})
            else:
                print(job_id)
            return
        from tuneforge.distributed.submit import wait as wait_job

        with user_errors():
            wait_job(job_client, job_id, on_logs=_echo if follow else None)
            _finish(job_client, job_id, as_json)

    app.add_typer(jobs_app, name="jobs")


@jobs_app.command("list")
def list_jobs(address: Address = None, as_json: JsonFlag = False) -> None:
    """Jobs on the cluster, newest first: id, status, entrypoint."""
    with user_errors():
        _, job_client = _client(address)
        jobs = [j for j in job_client.list_jobs() if j.submission_id]  # not bare drivers (ray.init)
        jobs.sort(key=lambda j: j.start_time or 0, reverse=True)
    rows = [
        {"job_id": j.submission_id, "status": str(j.status.value), "entrypoint": j.entrypoint} for j in jobs
    ]
    out = Console(soft_wrap=True)
    for r in rows:
        out.print(f"{r['job_id']}  {r['status']:<9}  {r['entrypoint']}", highlight=False)
    if as_json:
        print_json_line({"jobs": rows})


@jobs_app.command("status")
def job_status(
    job_id: str = typer.Argument(..., help="raysubmit_..."),
    address: Address = None,
    as_json: JsonFlag = False,
) -> None:
    """The job's status; for a finished tuneforge job, whether it trained (exit 1 if not)."""
    with user_errors():
        _, job_client = _client(address)
        status, result = _judge(job_client, job_id)
    if result is None:
        console.print(f"job {job_id}: {status}", highlight=False)
        if as_json:
            print_json_line({"job_id": job_id, "status": status})
        return
    if as_json:
        print_json_line({"job_id": job_id, "status": status, "ok": result.ok, "reason": result.reason})
    if not result.ok:
        fail(f"job {job_id}: {status}; {result.reason}")
    console.print(f"job {job_id}: {status}; {result.reason}", highlight=False)


@jobs_app.command("logs")
def job_logs(
    job_id: str = typer.Argument(..., help="raysubmit_..."),
    address: Address = None,
    follow: bool = typer.Option(False, "--follow", help="Keep streaming until the job ends."),
) -> None:
    """The job's driver logs."""
    from tuneforge.distributed.submit import wait as wait_job

    with user_errors():
        _, job_client = _client(address)
        _status_of(job_client, job_id)
        if follow:
            wait_job(job_client, job_id, on_logs=_echo)
        else:
            sys.stdout.write(job_client.get_job_logs(job_id))


@jobs_app.command("stop")
def job_stop(job_id: str = typer.Argument(..., help="raysubmit_..."), address: Address = None) -> None:
    """Ask the cluster to stop the job (its driver and every worker)."""
    with user_errors():
        _, job_client = _client(address)
        _status_of(job_client, job_id)
        stopped = job_client.stop_job(job_id)
    console.print(f"job {job_id}: {'stop requested' if stopped else 'already finished'}", highlight=False)


__all__ = ["jobs_app", "register_submit_command"]
