"""The `forgeset` command line (typer). Heavy libraries are imported inside the commands."""

from __future__ import annotations

import json
import os
import shlex
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Build, verify and inspect datasets for detecting AI-generated images.",
)
build_app = typer.Typer(no_args_is_help=True, help="Build corpora from a YAML spec.")
app.add_typer(build_app, name="build")

console = Console(stderr=True)
SPEC_ERROR_EXIT = 2
BIAS_GATE_EXIT = 3


def _fail(message: str, code: int) -> typer.Exit:
    """Print one error line (user strings in it are never read as rich markup) and exit with `code`."""
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _say(markup: str, *values: object) -> None:
    """Print a status line: `markup` is ours; each `{}` takes a user value, escaped."""
    console.print(markup.format(*(escape(str(v)) for v in values)), highlight=False, soft_wrap=True)


def _print_plan(loaded: Any) -> None:
    """`--plan-only`: plan the spec (sources listed, no model loaded, nothing written) and print it."""
    from forgeset.builders.plan_report import render_plan, summarize_plan
    from forgeset.builders.planner import plan_build
    from forgeset.builders.preflight import preflight
    from forgeset.builders.spec import SpecError

    try:
        preflight(loaded, check_models=False)
        summary = summarize_plan(plan_build(loaded.spec, loaded.base_dir, counts_only=True))
    except SpecError as err:
        raise _fail(str(err), SPEC_ERROR_EXIT) from None
    render_plan(summary, Console())


class StopOnSignal:
    """While active, SIGINT/SIGTERM ask the build to stop after the shards in flight; a second one stops now.

    The handler only sets an event and writes one raw line (safe inside a signal handler); the
    build sees the event between shards.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.signal = signum
        self.event.set()
        os.write(2, b"\nstopping: finishing the shards in flight (signal again to stop at once)\n")

    def __enter__(self) -> StopOnSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _is_network_error(err: Exception) -> bool:
    """Whether `err` says the Hub could not be reached (offline mode, refused, DNS, timeout)."""
    if isinstance(err, OSError):  # requests' errors and huggingface_hub's OfflineModeIsEnabled
        return True
    import importlib

    for client in ("httpx", "httpx2"):  # huggingface_hub's HTTP client, by release
        try:
            transport_error = importlib.import_module(client).TransportError
        except (ImportError, AttributeError):
            continue
        if isinstance(err, transport_error):
            return True
    return False


def _corpus_refused(err: Exception) -> typer.Exit:
    """A corpus command's failure: damage found by verify exits 1; a folder refused on opening exits 2.

    Corpus.open refuses, before anything is written, a folder that is not a finished corpus or
    whose index or manifest fails validation (a doctored name, path, hash or schema).
    """
    from forgeset.manifests.verify import CorpusInvalid

    return _fail(str(err), 1 if isinstance(err, CorpusInvalid) else SPEC_ERROR_EXIT)


def _out_location(out: str) -> Path | str:
    """OUT as given on the command line: a URL stays a string (a Path would turn s3:// into s3:/)."""
    from forgeset.manifests.storage import is_url

    return out if is_url(out) else Path(out)


def _ray_resources(text: str | None) -> dict[str, float]:
    """--ray-resources: a JSON object of resource names to positive amounts."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError as err:
        raise _fail(f"--ray-resources: not JSON ({err})", SPEC_ERROR_EXIT) from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for k, v in data.items()
    ):
        example = '{"writer": 1}'
        raise _fail(
            f"--ray-resources: expected a JSON object of names to positive numbers, e.g. {example}", SPEC_ERROR_EXIT
        )
    return {name: float(amount) for name, amount in data.items()}


@build_app.command("dataset")
def build_dataset_command(
    spec: Annotated[Path, typer.Option("--spec", help="YAML spec file")],
    out: Annotated[
        str | None,
        typer.Option(
            "--out", help="output folder or object-storage URL (s3://bucket/corpus)", show_default="out/SPEC_NAME"
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="parallel CPU workers", show_default="CPU count")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="join this Ray cluster instead of starting a local one")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume/--fresh", help="reuse finished shards of the same spec in OUT, or rebuild all")
    ] = True,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace a build of a different spec in OUT")] = False,
    executor_name: Annotated[
        str,
        typer.Option(
            "--executor",
            help="auto (a process pool for small builds, one process for one worker, else Ray), ray (local "
            "cluster or --ray-address), processes (a pool on this machine) or local (in this process)",
        ),
    ] = "auto",
    plan_only: Annotated[
        bool,
        typer.Option("--plan-only", help="print the plan, its counts and a GPU-time estimate; load and write nothing"),
    ] = False,
    verify: Annotated[
        bool, typer.Option("--verify", help="re-hash reused shards instead of trusting their size and mtime")
    ] = False,
    strict: Annotated[bool, typer.Option("--strict", help="fail (exit 2) if a class has no samples")] = False,
    shared_fs: Annotated[
        bool, typer.Option("--shared-fs", help="OUT is on a filesystem every node of the Ray cluster mounts")
    ] = False,
    ray_resources: Annotated[
        str | None,
        typer.Option(
            "--ray-resources", help="custom Ray resources each shard task asks for, as JSON: '{\"writer\": 1}'"
        ),
    ] = None,
    timeline: Annotated[
        Path | None, typer.Option("--timeline", help="write a Chrome-trace JSON of shards, batches and hosts")
    ] = None,
) -> None:
    """Build a sharded WebDataset corpus with manifest and index from SPEC."""
    import time

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from forgeset.builders.build import BuildInterrupted, MissingClass, OutputConflict, build_dataset
    from forgeset.builders.executors import (
        EXECUTORS,
        Executor,
        ExecutorUnavailable,
        LocalExecutor,
        OutputNotShared,
        ProcessExecutor,
        RayExecutor,
        ShardFailed,
        choose_executor,
    )
    from forgeset.builders.spec import SpecError, load_spec

    if executor_name not in EXECUTORS:
        raise _fail(f"--executor must be one of {', '.join(EXECUTORS)}, got {executor_name!r}", SPEC_ERROR_EXIT)
    if executor_name in ("local", "processes") and ray_address:
        raise _fail("--ray-address needs --executor ray", SPEC_ERROR_EXIT)
    task_resources = _ray_resources(ray_resources)
    if task_resources and executor_name != "ray":
        raise _fail("--ray-resources needs --executor ray", SPEC_ERROR_EXIT)
    try:
        loaded = load_spec(spec)
    except SpecError as err:
        raise _fail(str(err), SPEC_ERROR_EXIT) from None
    if plan_only:
        _print_plan(loaded)
        return
    out_dir = _out_location(out) if out else Path("out") / loaded.spec.name
    executor: Executor
    if executor_name == "local":
        executor = LocalExecutor()
    elif executor_name == "processes":
        executor = ProcessExecutor(workers)
    elif executor_name == "ray":
        executor = RayExecutor(
            workers or os.cpu_count() or 1, ray_address, shared_fs=shared_fs, task_resources=task_resources
        )
    else:
        executor = choose_executor(loaded.spec, workers, ray_address, shared_fs)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("samples  {task.fields[shards]}  {task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    began = time.monotonic()
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as bar:
        task = bar.add_task(f"planning {loaded.spec.name}", total=None, shards="", rate="")

        planned = {"shards": 0, "reused": 0}

        def on_plan(total_samples: int, total_shards: int, done_samples: int, done_shards: int) -> None:
            planned["shards"], planned["reused"] = total_shards, done_samples
            bar.update(
                task,
                description=f"building {loaded.spec.name}",
                total=total_samples,
                completed=done_samples,
                shards=f"{done_shards}/{total_shards} shards",
            )

        def on_progress(samples: int, shards: int) -> None:
            # The rate of this run's work (reused shards excluded); rich's ETA follows the same counts.
            rate = (samples - planned["reused"]) / max(1e-9, time.monotonic() - began)
            bar.update(task, completed=samples, shards=f"{shards}/{planned['shards']} shards", rate=f"{rate:.1f}/s")

        stop = StopOnSignal()
        try:
            with stop:
                result = build_dataset(
                    loaded,
                    out_dir,
                    executor=executor,
                    fresh=not resume,
                    overwrite=overwrite,
                    progress=on_progress,
                    on_plan=on_plan,
                    stop=stop.event,
                    verify=verify,
                    strict=strict,
                    timeline=timeline,
                )
        except (BuildInterrupted, KeyboardInterrupt) as err:
            bar.stop()
            resume_command = ["forgeset", "build", "dataset", "--spec", str(spec), "--out", str(out_dir)]
            if executor_name != "auto":
                resume_command += ["--executor", executor_name]
            kept = str(err) if isinstance(err, BuildInterrupted) else "stopped at once; finished shards are kept"
            _say("[yellow]{}[/]; resume with: {}", kept, shlex.join(resume_command))
            raise typer.Exit(128 + (stop.signal or signal.SIGINT)) from None
        except SpecError as err:
            raise _fail(str(err), SPEC_ERROR_EXIT) from None
        except (OutputConflict, OutputNotShared, MissingClass) as err:
            raise _fail(str(err), SPEC_ERROR_EXIT) from None
        except (ShardFailed, ExecutorUnavailable, ValueError) as err:
            raise _fail(str(err), 1) from None
        except OSError as err:  # disk full, a file-size limit, a read-only OUT
            where = f" {err.filename}" if err.filename else ""
            raise _fail(
                f"cannot write{where}: {err.strerror or err}; free space or raise the limit, then run the same "
                "command again to resume (finished shards are kept)",
                1,
            ) from None
    index = result.index
    reused = f", {result.reused_shards} reused" if result.reused_shards else ""
    seconds = time.monotonic() - began
    _say(
        f"[green]built[/] {index['samples']} samples in {len(index['shards'])} shards "
        f"({result.built_shards} built{reused}), {index['rejects']} rejected in {seconds:.1f} s -> {{}}",
        result.out_dir,
    )
    for warning in result.warnings:
        _say("[bold yellow]warning:[/] {}", warning)
    from forgeset.manifests.bias_probe import gate_message

    max_auc = loaded.spec.bias_gate.max_auc
    failed = gate_message(index["bias_probe"], max_auc) if max_auc is not None else None
    if failed:
        raise _fail(f"{failed} (the corpus is written; see `forgeset inspect`)", BIAS_GATE_EXIT)


@app.command()
def verify(
    out: Annotated[str, typer.Argument(help="a built corpus folder or URL (s3://bucket/corpus)")],
    strict: Annotated[
        bool, typer.Option("--strict", help="fail on files under OUT that index.json does not list")
    ] = False,
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", min=1, help="worker processes", show_default="every CPU")
    ] = None,
    hash_only: Annotated[
        bool, typer.Option("--hash-only", help="check every file's size and sha256 and the manifest; decode nothing")
    ] = False,
) -> None:
    """Re-hash every file, decode every sample, check rows, counts and members against index.json."""
    from rich.progress import Progress

    from forgeset.manifests.corpus import CorpusError
    from forgeset.manifests.verify import verify_corpus

    try:
        with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
            task = bar.add_task("hashing" if hash_only else "verifying", total=None)
            totals = verify_corpus(
                _out_location(out),
                progress=lambda n: bar.advance(task, n),
                strict=strict,
                jobs=jobs,
                hash_only=hash_only,
                on_total=lambda n: bar.update(task, total=n),
            )
    except CorpusError as err:
        raise _corpus_refused(err) from None
    unlisted = totals["unlisted"]
    if unlisted:
        shown = ", ".join(unlisted[:5]) + (f" and {len(unlisted) - 5} more" if len(unlisted) > 5 else "")
        _say(
            "[yellow]warning:[/] {} files under OUT are not in index.json (ignored by every reader): {}",
            len(unlisted),
            shown,
        )
    checked = "every file matches index.json" + (" (hashes only, nothing decoded)" if hash_only else "")
    _say(f"[green]ok[/] {totals['samples']} samples in {totals['shards']} shards; {checked}")


@app.command()
def inspect(
    out: Annotated[Path, typer.Argument(help="a built corpus folder")],
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Counts per split/label/kind/generator and a format/size audit per label."""
    from forgeset.manifests.audit import audit_corpus
    from forgeset.manifests.corpus import CorpusError

    try:
        report = audit_corpus(out)
    except CorpusError as err:
        raise _corpus_refused(err) from None
    for split, labels in report["missing_classes"].items():
        where = "the corpus" if split == "all" else f"split {split}"
        _say("[bold red]warning:[/] {} has no {} samples", where, " and no ".join(labels))
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    stdout = Console()
    counts = Table(title=escape(f"{report['name']}: {report['samples']} samples"))
    for column in ("split", "total", "label", "kind", "generator"):
        counts.add_column(column)
    for split, tally in [*report["counts"]["splits"].items(), ("all", report["counts"]["all"])]:
        counts.add_row(
            escape(split),
            str(tally["total"]),
            *(escape(", ".join(f"{k} {v}" for k, v in tally[f].items())) for f in ("label", "kind", "generator")),
        )
    stdout.print(counts)
    audit = Table(title="format and size per label (real and fake should match)")
    for column in ("label", "count", "formats", "width", "height", "file bytes p5 / p50 / p95"):
        audit.add_column(column)
    for label, facts in report["audit"].items():
        sizes = facts["file_bytes"]
        audit.add_row(
            label,
            str(facts["count"]),
            ", ".join(f"{k}: {v}" for k, v in facts["formats"].items()),
            "{}..{}".format(*facts["width"]),
            "{}..{}".format(*facts["height"]),
            f"{sizes['p5']} / {sizes['p50']} / {sizes['p95']}",
        )
    stdout.print(audit)
    if report["rejects"]:
        stdout.print("rejected inputs: " + escape(", ".join(f"{k} {v}" for k, v in report["rejects"].items())))
    if report["leakage"]:
        leak = report["leakage"]
        stdout.print(
            f"leakage: {leak['parents_across_splits']} samples with a parent in another split, "
            f"{leak['hashes_across_splits']} identical images in more than one split"
        )
    probe = report["bias_probe"]
    if probe and probe.get("auc") is not None:
        attributes = ", ".join(f"{k} {v:.2f}" for k, v in probe["features"].items())
        stdout.print(f"bias probe (metadata only): AUC {probe['auc']:.3f}; per attribute: {attributes}")


def _tiers(values: list[str]) -> dict[str, int]:
    tiers = {}
    for value in values:
        name, _, count = value.partition("=")
        if not name or not count.isdigit() or int(count) < 1:
            raise _fail(f"--tier takes NAME=SHARDS_PER_SPLIT (e.g. xs=1), got {value!r}", SPEC_ERROR_EXIT)
        tiers[name] = int(count)
    return tiers


@app.command()
def publish(
    out: Annotated[Path, typer.Argument(help="a built corpus folder")],
    repo_id: Annotated[str, typer.Option("--repo-id", help="Hub dataset repo, ORG/NAME")],
    private: Annotated[bool, typer.Option("--private", help="create the repo as private")] = False,
    dry_run: Annotated[Path | None, typer.Option("--dry-run", help="write the Hub folder here; upload nothing")] = None,
    tier: Annotated[
        list[str] | None, typer.Option("--tier", help="size tier NAME=SHARDS per split", show_default="xs=1 s=4 m=16")
    ] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="files per commit")] = 50,
) -> None:
    """Build a Hub-ready folder (shards, manifest, index, dataset card) and upload it."""
    from forgeset.manifests.corpus import CorpusError
    from forgeset.manifests.layout import Layout
    from forgeset.manifests.verify import verify_corpus
    from forgeset.publish.hub import DEFAULT_TIERS, stage_release, upload_release, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except ValueError as err:
        raise _fail(f"--repo-id: {err}", SPEC_ERROR_EXIT) from None
    tiers = _tiers(tier) if tier else DEFAULT_TIERS
    try:
        verify_corpus(out)
        folder = dry_run or Layout(out).publish_dir
        files = stage_release(out, folder, repo_id, tiers)
    except CorpusError as err:
        raise _corpus_refused(type(err)(f"refusing to publish {out}: {err}")) from None
    if dry_run:
        _say(f"[green]wrote[/] {len(files)} files for {{}} to {{}} (nothing uploaded)", repo_id, folder)
        return
    from huggingface_hub import get_token
    from huggingface_hub.errors import HfHubHTTPError

    if not get_token():
        raise _fail("no Hugging Face token: set HF_TOKEN or run `hf auth login`", SPEC_ERROR_EXIT)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress

    try:
        # A bar on a terminal; elsewhere only the summary line below.
        with Progress(
            "uploading", BarColumn(), MofNCompleteColumn(), console=console, disable=not console.is_terminal
        ) as bar:
            task = bar.add_task("uploading", total=len(files))
            report = upload_release(
                folder, files, repo_id, private, batch, lambda done, total: bar.update(task, completed=done)
            )
    except HfHubHTTPError as err:
        raise _fail(f"upload to {repo_id} failed (run the same command again to resume): {err}", 1) from None
    except Exception as err:
        if not _is_network_error(err):
            raise
        endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
        raise _fail(
            f"cannot reach the Hub at {endpoint} ({type(err).__name__}: {err}); check the network, HF_ENDPOINT "
            "and HF_HUB_OFFLINE, then run the same command again to resume",
            1,
        ) from None
    _say(f"[green]published[/] {report.files} files in {report.batches} commit batches to {{}}", repo_id)


@app.command()
def export(
    out: Annotated[Path, typer.Argument(help="a built corpus folder")],
    target: Annotated[Path, typer.Argument(help="folder to write")],
    layout: Annotated[str, typer.Option("--format", help="cnndetection | imagefolder")] = "cnndetection",
    cnn_layout: Annotated[
        str, typer.Option("--layout", help="cnndetection: per-generator folders, or merged (each real once)")
    ] = "per-generator",
    balance: Annotated[
        bool, typer.Option("--balance", help="cnndetection: a seeded, equal number of reals and fakes per folder")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="the seed of --balance's draw")] = 0,
) -> None:
    """Copy the corpus into a folder layout detector code reads (byte copies; nothing re-encoded)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from forgeset.manifests.corpus import CorpusError
    from forgeset.publish.export import FORMATS, LAYOUTS, export_corpus

    if layout not in FORMATS:
        raise _fail(f"--format must be one of {', '.join(FORMATS)}, got {layout!r}", SPEC_ERROR_EXIT)
    if cnn_layout not in LAYOUTS:
        raise _fail(f"--layout must be one of {', '.join(LAYOUTS)}, got {cnn_layout!r}", SPEC_ERROR_EXIT)
    if target.exists() and not target.is_dir():
        raise _fail(f"{target} exists and is not a folder", SPEC_ERROR_EXIT)
    if target.exists() and any(target.iterdir()):
        raise _fail(f"{target} exists and is not empty", SPEC_ERROR_EXIT)
    # A bar on a terminal; elsewhere (logs, CI) only the summary line below.
    with Progress(
        "{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task("exporting", total=None)
        try:
            counts = export_corpus(
                out,
                target,
                layout,
                cnn_layout=cnn_layout,
                balance=balance,
                seed=seed,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except CorpusError as err:
            raise _corpus_refused(err) from None
    _say(
        f"[green]exported[/] {sum(counts.values())} files in {len(counts)} folders to {{}} "
        "(lossless copies of the shard members; nothing was re-encoded)",
        target,
    )


@app.command()
def validate(
    out: Annotated[Path, typer.Argument(help="a built corpus folder")],
    detector_names: Annotated[
        str | None, typer.Option("--detectors", help="comma-separated detector types", show_default="the baselines")
    ] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="override each detector's epochs")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    matrix_detector: Annotated[
        str | None,
        typer.Option("--matrix-detector", help="detector for the cross-generator matrix", show_default="the first"),
    ] = None,
    backbone: Annotated[
        str | None, typer.Option("--backbone", help="vision backbone (Hub id or folder) for clip and rigid")
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=0, help="DataLoader processes decoding shards (0: in the main process)")
    ] = 0,
) -> None:
    """Train baseline detectors, evaluate every protocol, write validation/metrics.json and report.html."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from forgeset.detectors import detectors
    from forgeset.detectors.base import default_detectors
    from forgeset.detectors.report import render_report
    from forgeset.detectors.validate import validate_corpus
    from forgeset.manifests.corpus import CorpusError
    from forgeset.manifests.layout import HOLDOUT_SPLIT, Layout

    given = default_detectors() if detector_names is None else detector_names.split(",")
    names = [n.strip() for n in given if n.strip()]
    unknown = sorted(set(names) - set(detectors.names()))
    if not names or unknown:
        raise _fail(
            f"--detectors: unknown {unknown or 'none given'}; known: {', '.join(detectors.names())}", SPEC_ERROR_EXIT
        )
    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task("loading corpus", total=None)
            results = validate_corpus(
                out,
                names,
                epochs,
                seed,
                matrix_detector,
                progress=lambda message: bar.update(task, description=message),
                backbone=backbone,
                workers=workers,
            )
    except CorpusError as err:
        raise _corpus_refused(err) from None
    except ValueError as err:
        raise _fail(str(err), 1) from None
    paths = Layout(out)
    paths.report.write_text(render_report(results, out.name), encoding="utf-8")
    table = Table(title="validation (test split)")
    for column in ("detector", "AUC", "AP", "acc", "EER", f"{HOLDOUT_SPLIT} AUC"):
        table.add_column(column)
    for name, entry in results["detectors"].items():
        test = entry["test"]
        table.add_row(
            name,
            *(str(test[k]) for k in ("auc", "ap", "accuracy", "eer")),
            str((entry.get(HOLDOUT_SPLIT) or {}).get("auc")),
        )
    Console().print(table)
    _say("[green]wrote[/] {} and {}", paths.metrics, paths.report.name)


@app.command()
def curate(
    first: Annotated[str, typer.Argument(metavar="OUT | sync", help="a built corpus, or `sync` followed by it")],
    second: Annotated[Path | None, typer.Argument(metavar="[OUT]", help="the corpus, after `sync`")] = None,
    name: Annotated[str | None, typer.Option("--name", help="FiftyOne dataset", show_default="the corpus name")] = None,
    media: Annotated[
        Path | None, typer.Option("--media", help="where images are extracted", show_default="OUT/media")
    ] = None,
    launch: Annotated[bool, typer.Option("--launch", help="serve the FiftyOne App on localhost")] = False,
    port: Annotated[int, typer.Option("--port", help="App port")] = 5151,
) -> None:
    """Import a corpus into FiftyOne (brain runs, saved views), or `curate sync OUT` to save tags and regions back."""
    import time

    import pyarrow.parquet as pq
    from rich.progress import MofNCompleteColumn, Progress

    from forgeset.annotate.curation import CurationError, import_corpus, sync_curation
    from forgeset.manifests.corpus import CorpusError
    from forgeset.manifests.layout import Layout

    try:
        if first == "sync":
            if second is None:
                raise _fail("usage: forgeset curate sync OUT", SPEC_ERROR_EXIT)
            table = sync_curation(second, name)
            paths = Layout(second)
            regions = pq.read_metadata(paths.annotations).num_rows
            _say(
                f"[green]wrote[/] {table.num_rows} decisions to {{}} and {regions} regions to {{}}",
                paths.curation,
                paths.annotations,
            )
            return
        out = Path(first)
        started = time.monotonic()
        # A bar on a terminal; elsewhere only the summary line below.
        with Progress(
            *Progress.get_default_columns(),
            MofNCompleteColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        ) as bar:
            task = bar.add_task("importing", total=None)
            dataset = import_corpus(
                out,
                name,
                media,
                progress=lambda phase, done, total: bar.update(task, description=phase, completed=done, total=total),
            )
        seconds = time.monotonic() - started
    except CorpusError as err:
        raise _corpus_refused(err) from None
    except CurationError as err:
        raise _fail(str(err), 1) from None
    _say(
        f"[green]imported[/] {len(dataset)} samples in {seconds:.1f} s into FiftyOne dataset {{}}; saved views: {{}}",
        repr(dataset.name),
        ", ".join(f"{view} ({len(dataset.load_saved_view(view))})" for view in dataset.list_saved_views()),
    )
    if launch:
        import fiftyone as fo

        session = fo.launch_app(dataset, port=port, address="127.0.0.1", remote=True)
        console.print(f"App at http://127.0.0.1:{port}/ (Ctrl-C to stop)", highlight=False)
        session.wait(-1)


@app.command(name="filter")
def filter_command(
    out: Annotated[Path, typer.Argument(help="a built corpus with curation.parquet")],
    target: Annotated[Path, typer.Option("--out", help="where the new corpus version is written")],
    with_derivatives: Annotated[
        bool, typer.Option("--with-derivatives", help="also drop samples derived from excluded ones")
    ] = False,
) -> None:
    """Write a new corpus version without excluded samples, relabels applied, re-sharded."""
    from forgeset.annotate.curation import CurationError, filter_corpus
    from forgeset.manifests.corpus import CorpusError

    try:
        index = filter_corpus(out, target, with_derivatives)
    except CorpusError as err:
        raise _corpus_refused(err) from None
    except CurationError as err:
        raise _fail(str(err), 1) from None
    derived = index["derived_from"]
    _say(
        f"[green]wrote[/] {index['samples']} samples to {{}} ({derived['excluded']} excluded, "
        f"{derived['relabeled']} relabeled"
        + (f", {derived['annotated']} with regions" if "annotated" in derived else "")
        + ")",
        target,
    )


def main() -> None:
    """The console script: `forgeset ...`."""
    # Past a file-size limit (ulimit -f) the kernel sends SIGXFSZ, which kills the process silently;
    # ignored, the write fails with EFBIG and the build reports it like a full disk.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    # Before FiftyOne is imported: its bundled mongod is older than FiftyOne's version check asks
    # for (a warning on every command), and no telemetry; a user's own setting wins.
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    app()


if __name__ == "__main__":
    main()
