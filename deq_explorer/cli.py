"""``deq-explorer``: the scriptable twin of the napari explorer.

Sub-commands: ``reconstruct``, ``compare``, ``export``, ``train``, ``priors``, ``operators``,
``solvers``; no sub-command opens napari with the explorer docked. Exit codes: 0 done,
2 bad input (reported on stderr, never a half-written file), 3 a solve or a training run
diverged (its JSON says ``"status": "diverged"``), 130 interrupted. A solve whose residual
stops falling ends as ``"stalled"`` (exit 0, with a note on stderr).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from deq_explorer import jsonio, runs
from deq_explorer.errors import InputError
from deq_explorer.training.cli import EXIT_DIVERGED

__all__ = ["main"]

#: the CLI's settings where neither a flag nor the prior's training names one (it
#: accelerates by default, unlike the API)
CLI_DEFAULTS = {"solver": "pnp-pgm", "accel": "anderson", "tol": 1e-4}

#: a solve's progress bar appears once it has run this long (short solves print nothing)
PROGRESS_DELAY_S = 2.0

EXAMPLES = """examples:
  deq-explorer reconstruct sample:brain --operator mri:rate=0.3 --noise 0.01 \\
      --prior tv:weight=0.01 --accel anderson:m=5 --json
  deq-explorer reconstruct photo.png --operator sr:scale=2 --solve-operator sr:scale=2,sigma=1.5
  deq-explorer compare sample:camera --operator deblur:sigma=1.6 --prior identity --prior tv
  deq-explorer priors
"""


def _names(kind: str) -> str:
    from deq_explorer import registry

    return ", ".join(getattr(registry, kind).names())


def _add_problem_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "image",
        metavar="IMAGE",
        nargs="?",
        help="clean image to simulate the data from: png/jpg/tif/npy file or sample:NAME",
    )
    p.add_argument(
        "--measurement",
        metavar="FILE",
        help="reconstruct this measurement instead of simulating one: .npy/.npz array (complex "
        "k-space for mri; an .npz's 'y', e.g. a saved --out) or an image file; its shape must "
        "be what --operator measures",
    )
    p.add_argument(
        "--reference",
        metavar="IMAGE",
        help="ground truth for a --measurement (PSNR/SSIM are reported only with one)",
    )
    p.add_argument(
        "--operator",
        default="denoise",
        metavar="SPEC",
        help=f"forward model that makes the data ({_names('operators')})",
    )
    p.add_argument(
        "--solve-operator",
        default=None,
        metavar="SPEC",
        help="model the solver uses (default: --operator); differs = mismatch study",
    )
    p.add_argument(
        "--noise",
        type=float,
        default=0.01,
        metavar="SIGMA",
        help="AWGN sigma on the [0, 1] scale (default 0.01)",
    )
    p.add_argument(
        "--solver",
        default=None,
        metavar="SPEC",
        help=f"fixed-point solver ({_names('solvers')}); default: the one the prior was "
        "trained in, else pnp-pgm",
    )
    p.add_argument(
        "--accel",
        default=None,
        metavar="SPEC",
        help=f"acceleration ({_names('accelerators')}); default: the prior's trained one, "
        "else anderson",
    )
    p.add_argument(
        "--init",
        default=None,
        choices=["init", "zero", "adjoint", "backbone"],
        help="starting image: the operator's init(y) (default), zeros, A^T y, or --backbone's "
        "output",
    )
    p.add_argument(
        "--backbone",
        default=None,
        metavar="NAME|FILE",
        help="a reconstruction network (srcnn-x2/x3/x4 or a checkpoint) whose output starts the "
        "solve: MCNet's w for mcnet-admm",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    p.add_argument("--max-iter", type=int, default=100, metavar="N")
    p.add_argument(
        "--tol",
        type=float,
        default=None,
        metavar="T",
        help="stop when the --stop-on criterion falls below T (default: the prior's trained "
        "one, else 1e-4; 0 runs all --max-iter)",
    )
    p.add_argument(
        "--stop-on",
        choices=["residual", "change"],
        default="residual",
        help="residual: the relative fixed-point residual ||T(z)-z||/||z|| (default); change: "
        "the relative change between iterates (deepinv's rule; the same without --accel)",
    )
    p.add_argument(
        "--continuation",
        metavar="START:STAGES",
        help="σ continuation: solve in STAGES warm-started stages with the denoiser's σ going "
        "from START down to its own (e.g. 0.2:5; a prior with a sigma option)",
    )
    p.add_argument(
        "--tune",
        choices=["sure", "discrepancy"],
        default="sure",
        help="how a prior option given as 'auto' (e.g. --prior tv:weight=auto) is chosen: "
        "sure, the smallest SURE estimate of the risk (default), or discrepancy, the residual "
        "matching the noise (needs --noise > 0)",
    )
    p.add_argument("--seed", type=int, default=0, metavar="S", help="noise seed")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--gray", action="store_true", help="convert a colour image to gray first")
    p.add_argument(
        "--crop",
        action="store_true",
        help="crop the image to the size multiple the operator needs instead of refusing it",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")  # fmt: skip


def _registered() -> str:
    """The registry names (plugin packs included) and the samples, for ``--help``."""
    import textwrap

    from deq_explorer.images import sample_names

    lines = [
        f"{kind}: {_names(kind)}" for kind in ("operators", "priors", "solvers", "accelerators")
    ]
    lines.append(f"samples (sample:NAME): {', '.join(sample_names())}")
    wrapped = [
        textwrap.fill(line, 96, initial_indent="  ", subsequent_indent="    ") for line in lines
    ]
    return "registered:\n" + "\n".join(wrapped) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deq-explorer",
        description="Plug-and-play and deep-equilibrium reconstruction; "
        "without a sub-command, opens napari with the explorer.",
        epilog=EXAMPLES + "\n" + _registered(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    rec = sub.add_parser(
        "reconstruct",
        help="simulate a measurement and reconstruct it",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_problem_args(rec)
    rec.add_argument(
        "--prior",
        default="tv",
        metavar="SPEC",
        help=f"prior ({_names('priors')}) or a checkpoint path",
    )
    rec.add_argument(
        "--out",
        default=None,
        metavar="FILE.npz",
        help="save reconstruction, measurement, reference, init and history "
        "(replaces an existing file; see --no-clobber)",
    )
    rec.add_argument(
        "--no-clobber",
        action="store_true",
        help="refuse to replace an existing --out file (exit 2 before any work)",
    )
    cmp_ = sub.add_parser("compare", help="several priors on the same measurement")
    _add_problem_args(cmp_)
    cmp_.add_argument(
        "--prior",
        action="append",
        required=True,
        metavar="SPEC",
        help="a prior to compare (repeat the flag)",
    )
    cmp_.add_argument(
        "--out",
        default=None,
        metavar="FILE.npz",
        help="save every run: x stacked in prior order, history_0, history_1 ..., y, init, "
        "reference and config (the problem and the runs)",
    )
    cmp_.add_argument("--no-clobber", action="store_true", help="refuse to replace --out")
    for kind in ("priors", "operators", "solvers", "accelerators"):
        lst = sub.add_parser(kind, help=f"list the registered {kind}")
        lst.add_argument("--json", action="store_true")
    _add_export_args(sub)
    train = sub.add_parser("train", help="train an AWGN or DEQ prior (see train --help)")
    try:
        from deq_explorer.training import cli as train_cli
    except ImportError:  # pragma: no cover - the training package ships with the core
        train_cli = None
    if train_cli is not None:
        train_cli.add_arguments(train)
    return parser  # fmt: skip


#: solve settings a user may expect an export to carry; they are refused with the reason
SOLVE_FLAGS = ("--solver", "--accel", "--tol", "--max-iter", "--stop-on")


def _add_export_args(sub: Any) -> None:
    exp = sub.add_parser(
        "export",
        help="write a prior's denoiser as a BioImage Model Zoo package, TorchScript or ONNX",
        description="Write a learned prior's denoiser D(x, sigma) to a file. Only the denoiser "
        "travels: the solve it is used in (solver, acceleration, tolerance) does not "
        "(deq_explorer/priors/shipped/FORMATS.md). bioimageio and onnx need "
        'pip install "deq-explorer[export]".',
    )
    exp.add_argument("prior", metavar="PRIOR", help="a learned prior's name or a checkpoint path")
    exp.add_argument(
        "--format",
        dest="fmt",
        default="bioimageio",
        choices=["bioimageio", "torchscript", "onnx"],
        help="bioimageio: a model package (.zip) with sigma as a second input; torchscript "
        "(.pt), onnx (.onnx): x -> D(x, sigma) with sigma fixed (default bioimageio)",
    )
    exp.add_argument("--out", required=True, metavar="PATH", help="the file to write")
    exp.add_argument(
        "--sigma",
        type=float,
        default=None,
        metavar="S",
        help="noise level of the test tensors (bioimageio) or fixed in the graph (torchscript, "
        "onnx); default: the prior's own",
    )
    for flag in SOLVE_FLAGS:
        exp.add_argument(flag, dest=f"solve_{flag[2:]}", default=None, help=argparse.SUPPRESS)


def _export(args: argparse.Namespace) -> int:
    from deq_explorer.export import export_prior

    given = [f for f in SOLVE_FLAGS if getattr(args, f"solve_{f[2:]}") is not None]
    if given:
        raise InputError(
            f"{', '.join(given)}: solve settings do not travel in an export; it holds the "
            "denoiser D(x, sigma) alone, and the consumer runs the solve (the prior's trained "
            "settings are recorded in a bioimageio package's config)"
        )
    path = export_prior(args.prior, Path(args.out), args.fmt, sigma=args.sigma)
    print(f"wrote {path} ({args.fmt})")
    return 0


# -- reconstruct / compare ----------------------------------------------------------------


def _problem(args: argparse.Namespace):
    from deq_explorer import api
    from deq_explorer.images import load_image, load_measurement, to_gray

    if not (math.isfinite(args.noise) and args.noise >= 0):
        raise InputError(f"--noise must be >= 0 (AWGN sigma on the [0, 1] scale), got {args.noise}")
    if args.measurement is not None:
        if args.image is not None or args.solve_operator is not None:
            raise InputError(
                "--measurement replaces IMAGE and --solve-operator: give the measurement, the "
                "--operator that made it, and optionally a --reference"
            )
        return api.from_measurement(
            load_measurement(args.measurement), args.operator, noise=args.noise,
            device=args.device, reference=args.reference,
        )  # fmt: skip
    if args.image is None:
        raise InputError("give an IMAGE to simulate from (e.g. sample:camera) or --measurement Y")
    if args.reference is not None:
        raise InputError("--reference goes with --measurement; a simulation's reference is IMAGE")
    image = load_image(args.image)
    if args.gray:
        image = to_gray(image)
    return api.simulate(
        image,
        args.operator,
        noise=args.noise,
        seed=args.seed,
        solve_operator=args.solve_operator,
        device=args.device,
        crop=args.crop,
    )


def _requests(args: argparse.Namespace, priors: list[str]):
    """One :class:`api.Request` per prior, settled (the CLI's fallback accelerates)."""
    from deq_explorer import api

    continuation = None
    if args.continuation is not None:
        start, _, stages = args.continuation.partition(":")
        try:
            start, stages = float(start), int(stages or 5)
        except ValueError:
            raise InputError(
                f"--continuation takes START:STAGES such as 0.2:5, got {args.continuation!r}"
            ) from None
    try:
        if args.continuation is not None:
            continuation = api.Continuation(start, stages)
        return [
            api.Request(
                prior=prior, solver=args.solver, accel=args.accel, max_iter=args.max_iter,
                tol=args.tol, stop_on=args.stop_on, continuation=continuation,
            ).settled(CLI_DEFAULTS)
            for prior in priors
        ]  # fmt: skip
    except api.RequestError as exc:
        raise InputError(f"--{exc.field.replace('_', '-')} {exc.reason}") from None


def _solve(problem, request, args: argparse.Namespace, progress: bool) -> dict[str, Any]:
    from deq_explorer import api, metrics

    x0 = problem.x_init()
    start = args.init or ("backbone" if args.backbone else "init")
    request = dataclasses.replace(request, w=api.start_image(problem, start, args.backbone))

    bar = None
    if progress:  # stderr only, on a terminal, never with --json or --quiet
        from tqdm import tqdm

        bar = tqdm(
            total=request.max_iter,
            desc=request.label,
            unit="it",
            delay=PROGRESS_DELAY_S,
            file=sys.stderr,
        )

    def show(it) -> None:
        bar.update(it.k - bar.n)
        psnr = f" psnr {it.psnr:.2f} dB" if it.psnr is not None else ""
        bar.set_postfix_str(f"residual {it.residual:.2e}{psnr}", refresh=False)

    t0 = time.perf_counter()
    tuning = None
    if api.auto_option(request.prior) is not None:
        tuning = _tune(problem, request, args)
        request = dataclasses.replace(request, prior=tuning.spec)
    try:
        solution = api.reconstruct(problem, request, on_iterate=show if bar else None)
        if bar is not None:
            bar.update(bar.total - bar.n)  # a solve that ended early is complete: 100 %
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    history = {k: solution.history[k] for k in ("residual", "consistency", "psnr", "ssim")}
    ref = problem.x_true
    return {
        "prior": api.problem_defaults(request.prior, problem),  # as solved: derived options shown
        "solver": request.solver,
        "accel": request.accel,
        "tol": request.tol,
        "stop_on": request.stop_on,
        "continuation": request.config()["continuation"],
        "start": start,
        "status": solution.status.value,
        "iterations": solution.iterations,
        "rate": solution.rate,
        "tuning": None if tuning is None else dataclasses.asdict(tuning),
        "seconds": round(seconds, 4),
        "psnr": history["psnr"][-1],
        "ssim": history["ssim"][-1],
        "psnr_init": metrics.psnr(x0, ref) if ref is not None else None,
        "consistency": history["consistency"][-1],
        "residual": history["residual"][-1],
        "residuals": history["residual"],
        "_history": history,
        "_x": solution.x,
        "_x0": x0,
    }


def _tune(problem, request, args: argparse.Namespace):
    """Tune the prior's ``auto`` option, each candidate shown on stderr (not with --quiet)."""
    from deq_explorer import api

    option = api.auto_option(request.prior)

    def note(c) -> None:
        if not (args.quiet or args.json):
            print(f"deq-explorer: tuning {option} ({args.tune}): {c.value:.4g} → score "
                  f"{c.score:.4g} ({c.iterations} iterations)", file=sys.stderr)  # fmt: skip

    try:
        tuning = api.tune(problem, request, method=args.tune, on_candidate=note)
    except api.RequestError as exc:
        raise InputError(f"--prior {exc.reason}") from None
    if not (args.quiet or args.json):
        print(f"deq-explorer: {option} = {tuning.value:.4g} ({tuning.note})", file=sys.stderr)
    return tuning


def _public(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if not k.startswith("_")}


def _check_out(path: str, no_clobber: bool = False) -> Path:
    """Refuse a bad ``--out`` before any work is done."""
    target = Path(path)
    if path.endswith(("/", "\\")) or target.is_dir():
        raise InputError(f"--out {path!r} is a folder; give a file name ending in .npz")
    if no_clobber and target.exists():
        raise InputError(f"--out {path!r} exists and --no-clobber is given; choose another name")
    if target.suffix != ".npz":
        raise InputError(f"--out must end with .npz, got {path!r}")
    if not target.parent.is_dir():
        raise InputError(f"--out folder {str(target.parent)!r} does not exist; create it first")
    return target


def _save_npz(path: str, problem, results: list[dict[str, Any]]) -> None:
    """Write the runs on ``problem`` (the format of :mod:`deq_explorer.runs`), atomically:
    nothing is left behind if writing fails."""
    target = _check_out(path)
    saved = [runs.SavedRun(r["_x"][0].cpu().numpy(), r["_history"], _public(r)) for r in results]
    try:
        runs.save(target, problem, saved)
    except OSError as exc:
        raise InputError(f"cannot write --out {path!r}: {exc}") from None


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if not math.isfinite(v) or abs(v) < 1e-2 else f"{v:.4f}"
    return str(v)


def _reconstruct(args: argparse.Namespace) -> int:
    if args.out:
        _check_out(args.out, args.no_clobber)
    (request,) = _requests(args, [args.prior])
    problem = _problem(args)
    _check_cost(problem, [args.prior], args)
    progress = sys.stderr.isatty() and not (args.json or args.quiet)
    result = _solve(problem, request, args, progress)
    if args.out:
        _save_npz(args.out, problem, [result])
    out = _public(result) | problem.config()
    code = EXIT_DIVERGED if out["status"] == "diverged" else 0
    if code:
        print(
            "deq-explorer: the solve diverged (its iterates grew without bound): lower the "
            "step size (e.g. --solver pnp-pgm:gamma=...) or the prior's strength, or use "
            "--accel none",
            file=sys.stderr,
        )
    if out["status"] == "stalled":
        print(
            f"deq-explorer: the solve stalled: its residual stopped falling at "
            f"{out['residual']:.2e}, above --tol {out['tol']:g}; the map may not be contractive "
            "at these settings (try --accel none, a smaller step or a stronger prior)",
            file=sys.stderr,
        )
    rate = out["rate"]
    if out["status"] == "max_iter" and rate is not None and rate >= 1:
        print(
            f"deq-explorer: the solve did not converge: at the iteration cap its residual was "
            f"not falling (ratio {rate:.3f} per iteration, ≥ 1), so the map does not contract "
            "at these settings; try a smaller step (e.g. --solver pnp-pgm:gamma=0.5) or a "
            "stronger prior",
            file=sys.stderr,
        )
    if args.json:
        print(jsonio.dumps(out))
        return code
    print(f"{problem.operator} → {problem.solve_operator}  noise {problem.noise}")
    for key in ("prior", "solver", "accel", "status", "iterations", "seconds", "psnr_init",
                "psnr", "ssim", "consistency", "residual", "rate"):  # fmt: skip
        print(f"  {key:<12} {_fmt(out[key])}")
    if args.out:
        print(f"  saved        {args.out}")
    return code


def _check_cost(problem, priors: list[str], args: argparse.Namespace) -> None:
    """Warn before a long solve; a solve that cannot fit in memory is refused (ProblemError)."""
    from deq_explorer import api

    for prior in priors:
        warning = api.check_cost(problem, prior, args.max_iter)
        if warning:
            print(f"deq-explorer: warning: {warning}; Ctrl-C stops", file=sys.stderr)


def _compare(args: argparse.Namespace) -> int:
    if args.out:
        _check_out(args.out, args.no_clobber)
    requests = _requests(args, args.prior)
    problem = _problem(args)
    _check_cost(problem, args.prior, args)
    progress = sys.stderr.isatty() and not (args.json or args.quiet)
    results = [_solve(problem, request, args, progress) for request in requests]
    if args.out:
        _save_npz(args.out, problem, results)
    rows = [_public(r) for r in results]
    if args.json:
        print(jsonio.dumps({"problem": problem.config(), "runs": rows}))
        return 0
    cols = ("prior", "status", "iterations", "seconds", "psnr_init", "psnr", "ssim", "consistency")
    widths = [max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for r in rows:
        print("  ".join(_fmt(r[c]).ljust(w) for c, w in zip(cols, widths, strict=True)))
    return 0


# -- listings -----------------------------------------------------------------------------


def _describe(meta: dict[str, Any]) -> list[str]:
    """Readable lines for a trained entry's metadata: how it was trained, how to solve with it."""
    if "mode" not in meta:
        return []
    ops = meta.get("operators") or []
    on = f" on {', '.join(ops[:3])}{f' (+{len(ops) - 3} more)' if len(ops) > 3 else ''}"
    source = (meta.get("data") or {}).get("source")
    lines = [
        f"trained: {meta['mode']} ({meta.get('architecture', '?')}){on if ops else ''}, "
        f"{meta.get('steps', '?')} steps" + (f", data {source}" if source else "")
    ]
    val = (meta.get("metrics") or {}).get("val_psnr")
    if isinstance(val, (int, float)) and math.isfinite(val):
        lines[0] += f"; validation {val:.2f} dB"
    from deq_explorer import api

    settings = api.settings_of(meta)
    solve = [settings[k] for k in ("solver", "accel") if k in settings]
    if "tol" in settings:
        solve.append(f"tol {settings['tol']:g}")
    if solve:
        sigma = meta.get("sigma")
        noise = f" (noise input σ {sigma:g})" if isinstance(sigma, (int, float)) else ""
        lines.append(f"solves with: {', '.join(solve)}{noise}")
    return lines


def _schema_lines(schema: tuple[Any, ...]) -> list[str]:
    """One aligned line per option: name, type, default, the values it takes, help."""
    rows = []
    for o in schema:
        default = o.format(o.default) or '""'
        takes = " | ".join(map(o.format, o.choices)) if o.choices else str(o.range or "")
        note = f"auto: derived from the problem, else {default}" if o.derived else ""
        text = "; ".join(filter(None, [o.help, note]))
        rows.append(([o.name, o.type_name, "auto" if o.derived else default, takes], text))
    widths = [max((len(cells[i]) for cells, _ in rows), default=0) for i in range(4)]
    return [
        "  ".join([*(c.ljust(w) for c, w in zip(cells, widths, strict=True)), text]).rstrip()
        for cells, text in rows
    ]


def _list(kind: str, as_json: bool) -> int:
    from deq_explorer import registry

    reg = getattr(registry, kind)
    entries = list(reg.entries())
    errors = registry.plugin_errors()
    if as_json:
        rows = [
            {"name": e.name, "summary": e.summary, "source": e.source, "options": e.options(),
             "schema": [o.describe() for o in e.schema()], "metadata": e.metadata}
            for e in entries
        ]  # fmt: skip
        print(json.dumps({kind: rows, "plugin_errors": errors}, default=str))
        return 0
    for e in entries:
        src = "" if e.source == "builtin" else f"  [{e.source}]"
        print(f"{e.name:<20} {e.summary}{src}")
        for line in [*_schema_lines(e.schema()), *_describe(e.metadata)]:
            print(f"{'':<20}   {line}")
    for pack, message in errors.items():
        print(f"plugin pack {pack!r} failed to load: {message}", file=sys.stderr)
    return 0


# -- entry point --------------------------------------------------------------------------


def _launch() -> int:
    try:  # the whole GUI stack, Qt binding included: one message, no traceback
        from deq_explorer._napari import launch

        launch.import_gui()
    except ImportError as exc:
        print(
            f"deq-explorer: the napari front end needs the 'napari' extra ({exc}); "
            "install it with\n"
            '  pip install "deq-explorer[napari]"\nor run a sub-command (deq-explorer --help).',
            file=sys.stderr,
        )
        return 2
    return launch.main()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input, 3 diverged, 130 interrupted)."""
    import torch

    from deq_explorer.api import INPUT_ERRORS

    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            return _launch()
        if args.command == "reconstruct":
            return _reconstruct(args)
        if args.command == "compare":
            return _compare(args)
        if args.command == "export":
            return _export(args)
        if args.command == "train":
            from deq_explorer.training import cli as train_cli

            return train_cli.run(args)
        return _list(args.command, args.json)
    except INPUT_ERRORS as exc:  # InputError and DeviceError among them
        print(f"deq-explorer: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deq-explorer: interrupted", file=sys.stderr)
        return 130
    except torch.cuda.OutOfMemoryError as exc:  # torch.OutOfMemoryError is the same class
        print(f"deq-explorer: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
