"""``deq-explorer train``: flags generated from :class:`TrainConfig`, a progress bar, exit codes.

Flags are ``--field-name`` for every recipe field (``--multitask-draws``,
``--mcnet-beta`` for the nested ones); ``--config recipe.toml`` loads a file
first and explicit flags override it. Runs under ``torchrun`` too::

    torchrun --nproc_per_node 2 -m deq_explorer.training.cli --mode awgn ...

Exit codes: 0 done (finished or stopped), 2 bad input or failed training, 3 diverged
(the last healthy checkpoint is kept; the JSON result says ``"status": "diverged"``).
The JSON result is strict JSON: a value that is not finite is written as ``null``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import typing
from collections.abc import Iterator
from typing import Any

from deq_explorer import jsonio
from deq_explorer.training.config import ConfigError, TrainConfig, field_types
from deq_explorer.training.events import (
    CheckpointEvent,
    DoneEvent,
    FailedEvent,
    StepEvent,
    ValEvent,
)
from deq_explorer.training.modes import mode, modes

__all__ = ["EXIT_DIVERGED", "add_arguments", "main", "run"]

#: exit code of a run that diverged (0 done, 2 bad input or failed)
EXIT_DIVERGED = 3

_NESTED = ("multitask", "mcnet")


def _flags(cls: type, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """``(flag, dest, type, help)`` for every leaf field of ``cls``."""
    out = []
    kinds = field_types(cls)
    for f in dataclasses.fields(cls):
        kind = kinds[f.name]
        if dataclasses.is_dataclass(kind):
            out += _flags(kind, f"{prefix}{f.name}-")
            continue
        name = f"{prefix}{f.name}"
        out.append(
            (f"--{name.replace('_', '-')}", name.replace("-", "__"), kind, f.metadata["help"])
        )
    return out


def _json_object(text: str) -> dict:
    """A ``--net``-style flag: one JSON object, with an example when it is not."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"not valid JSON ({exc.msg} at character {exc.pos}); give an object such as "
            '\'{"depth": 17, "width": 64}\' (keys in double quotes)'
        ) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object such as '{{\"width\": 64}}', got {text!r}"
        )
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` flags to ``parser`` (defaults ``None`` = not given)."""
    parser.add_argument("--config", metavar="FILE.toml", help="recipe file; flags override it")
    parser.add_argument("--no-register", action="store_true", help="do not register the result")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    defaults = TrainConfig()
    for flag, dest, kind, help_ in _flags(TrainConfig):
        owner, _, leaf = dest.rpartition("__")
        default = getattr(getattr(defaults, owner) if owner else defaults, leaf)
        shown = list(default) if isinstance(default, tuple) else default
        kw: dict[str, Any] = {"dest": dest, "default": None, "help": f"{help_} [{shown!r}]"}
        if typing.get_origin(kind) is tuple:
            (item,) = {a for a in typing.get_args(kind) if a is not Ellipsis}
            kw.update(nargs="*", type=item, metavar=item.__name__.upper())
        elif kind is dict:
            kw.update(type=_json_object, metavar="JSON")
        else:
            kw.update(type=kind, metavar=kind.__name__.upper())
        if dest == "mode":  # the registry's, packs' included: cannot drift
            kw.update(choices=modes.names(), metavar="{" + ",".join(modes.names()) + "}")
        parser.add_argument(flag, **kw)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The recipe of ``--config`` (if any) with every given flag applied on top."""
    values: dict[str, Any] = {}
    if args.config:
        values = TrainConfig.from_toml(args.config).to_dict()
    for _, dest, _, _ in _flags(TrainConfig):
        v = getattr(args, dest, None)
        if v is None:
            continue
        owner, _, leaf = dest.rpartition("__")
        (values.setdefault(owner, {}) if owner else values)[leaf] = v
    return TrainConfig.from_dict(values)


@contextlib.contextmanager
def _closing_bar(bar: Any) -> Iterator[None]:
    try:
        yield
    finally:
        if bar is not None:
            bar.close()


def run(args: argparse.Namespace) -> int:
    """Train as ``args`` says; print progress to stderr and the result to stdout."""
    try:
        config = config_from_args(args)
    except (ConfigError, json.JSONDecodeError) as exc:
        print(f"deq-explorer train: error: {exc}", file=sys.stderr)
        return 2
    main_process = int(os.environ.get("RANK", "0")) == 0
    bar = None
    if main_process and not args.quiet:
        # imported here: `--quiet` trains on a bare CUDA machine that has torch and nothing else
        from tqdm import tqdm

        bar = tqdm(total=config.steps if not config.epochs else None, unit="step", file=sys.stderr)
    from deq_explorer.training.loop import train

    done: DoneEvent | None = None
    # closing(): an early return still runs the trainer's teardown (barrier, process group) now,
    # not whenever the generator happens to be collected
    with contextlib.closing(train(config)) as events, _closing_bar(bar):
        for ev in events:
            if isinstance(ev, StepEvent) and bar is not None:
                bar.update(ev.step - bar.n)  # a resumed run starts at its step, not at 0
                bar.set_postfix_str(
                    f"loss {ev.loss:.4g} lr {ev.lr:.2g} fwd {ev.fwd_iters} bwd {ev.bwd_iters}"
                )
            elif isinstance(ev, ValEvent) and bar is not None:
                msg = f"step {ev.step}: validation PSNR {ev.psnr:.2f} dB, SSIM {ev.ssim:.4f}"
                bar.write(msg, file=sys.stderr)
            elif isinstance(ev, CheckpointEvent) and bar is not None:
                bar.write(f"checkpoint {ev.path} (step {ev.step})", file=sys.stderr)
            elif isinstance(ev, FailedEvent):
                print(f"deq-explorer train: error: {ev.message}", file=sys.stderr)
                return 2
            elif isinstance(ev, DoneEvent):
                done = ev
    if done is None:  # a non-main DDP process
        return 0
    result: dict[str, Any] = {"status": done.status, "checkpoint": done.path, "steps": done.step,
                              **done.metrics}  # fmt: skip
    if done.status == "diverged":
        print(f"deq-explorer train: error: {done.message}", file=sys.stderr)
        print(jsonio.dumps(result))
        return EXIT_DIVERGED
    if not args.no_register and mode(config.mode).role == "denoiser":
        from deq_explorer.priors.checkpoint import CheckpointError, register_checkpoint

        try:
            result["prior"] = register_checkpoint(done.path, config.name or None, replace=True)
        except CheckpointError as exc:
            print(f"deq-explorer train: could not register the prior: {exc}", file=sys.stderr)
            return 2
    print(jsonio.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m deq_explorer.training.cli`` (and of torchrun)."""
    parser = argparse.ArgumentParser(prog="deq-explorer train", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def exit_process(code: int) -> None:
    """End this process with ``code``; a torchrun worker ends without C++ static destructors.

    By then the trainer has met the other ranks at a barrier and destroyed its process
    group, and every file is written. What the interpreter's own teardown would still do in
    a worker is destroy communication threads of the distributed runtime that may be
    joinable; that aborts the process ("terminate called without an active exception",
    exit -6) now and then under load. ``os._exit`` after flushing skips that step.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_process(main())
