"""The benchmark in one command: ``python -m bench [--device cpu|cuda] [--sizes ...] [--steps N] [--repeats R]``.

For every size, every variant runs ``--repeats`` times, round-robin (each repeat runs every variant once, in a
freshly shuffled order), each run in its own fresh process. Then one *curve* pass per variant saves intermediate
images (every ``steps/--curve-points`` steps), which are not used for the timing table. Finally the judge
(:mod:`bench.score`) scores every saved PNG, and the table, the ratios, ``results.json``, ``runs.csv``,
``summary.csv`` and ``loss_vs_time.png`` are written to ``--out``.

Variants (``--variant``, repeatable; default: naive, ours, pastiche, pastiche-seedloss when pastiche is installed):

* ``naive``: the plain reference loop (:mod:`bench.naive`);
* ``ours`` or ``ours:KEY=VALUE,KEY=VALUE``: ``style_transfer.stylize`` with ``StyleConfig`` defaults except size
  and steps, plus these overrides (e.g. ``ours:precision=bf16``); ``--ours-set KEY=VALUE`` applies to every ours
  variant;
* ``pastiche``, ``pastiche-seedloss``, ``pastiche:FLAG=VALUE``: the peer's CLI (:mod:`bench.peers`).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import peers, report
from .inputs import REPO_ROOT, Inputs, prepare
from .procs import cpu_count, cpuinfo, git, launch, log_tail, thread_env

DEFAULTS = {
    "cpu": {"sizes": [128, 256], "steps": 100, "repeats": 2},
    "cuda": {"sizes": [512, 1024, 2048], "steps": 300, "repeats": 3},
}


@dataclass
class Variant:
    """One contender: ``kind`` is naive, ours or pastiche; ``options`` are config overrides or pastiche flags."""

    name: str
    kind: str
    options: dict[str, object] = field(default_factory=dict)
    preset: str | None = None
    aux: bool = False  # the pastiche 1-step start-up probe: timed, not compared
    steps: int | None = None  # overrides --steps (the 1-step probe)


def parse_value(text: str) -> object:
    """``true``/``false`` -> bool, numbers -> int/float, anything else stays text (StyleConfig coerces it)."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_pairs(text: str) -> dict[str, object]:
    """``a=1,b=x,y`` -> {a: 1, b: "x,y"} (a comma starts a new pair only when ``name=`` follows it)."""
    out: dict[str, object] = {}
    for part in re.split(r",(?=\s*[A-Za-z_][\w-]*=)", text):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {part!r}")
        out[key.strip()] = parse_value(value.strip())
    return out


def parse_variant(spec: str, ours_set: dict[str, object] | None = None) -> Variant:
    head, _, tail = spec.partition(":")
    head = head.strip()
    options = parse_pairs(tail) if tail else {}
    if head == "naive":
        if options:
            raise argparse.ArgumentTypeError("the naive variant takes no options")
        return Variant("naive", "naive")
    if head == "ours":
        return Variant(spec, "ours", {**(ours_set or {}), **options})
    if head in peers.PRESET_NAMES:
        return Variant(spec, "pastiche", options, preset=head)
    raise argparse.ArgumentTypeError(
        f"unknown variant {spec!r}: use naive, ours[:KEY=VALUE,...], pastiche[:FLAG=VALUE,...] or pastiche-seedloss"
    )


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "variant"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark our style-transfer engine against a naive loop and pastiche (time, memory, quality).",
    )
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: cuda when available")
    p.add_argument("--sizes", type=int, nargs="+", help="longest sides (default: cpu 128 256; cuda 512 1024 2048)")
    p.add_argument("--steps", type=int, help="optimisation steps per run (default: cpu 100, cuda 300)")
    p.add_argument("--repeats", type=int, help="timed runs per variant and size (default: cpu 2, cuda 3)")
    p.add_argument(
        "--variant",
        action="append",
        dest="variants",
        metavar="SPEC",
        help="naive | ours[:KEY=VALUE,...] | pastiche[:FLAG=VALUE,...] | pastiche-seedloss (repeatable)",
    )
    p.add_argument(
        "--ours-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="StyleConfig override for every ours variant, e.g. precision=bf16 (repeatable)",
    )
    p.add_argument("--no-pastiche", action="store_true", help="skip the pastiche peer even if it is installed")
    p.add_argument("--no-pastiche-startup", action="store_true", help="skip the 1-step pastiche start-up probe")
    p.add_argument("--curve-points", type=int, default=10, help="intermediate images per curve run (0: no curve pass)")
    p.add_argument("--cold-start", action="store_true", help="also measure import + model-load time (fresh process)")
    p.add_argument("--content", help="content image (default: examples/content/ first file, else a bundled photo)")
    p.add_argument("--style", help="style image (default: examples/styles/ first file, else a synthetic painting)")
    p.add_argument("--out", default=str(REPO_ROOT / "bench" / "results"), help="output folder")
    p.add_argument("--score-device", help="device of the judge (default: the benchmark device)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds before one run is killed")
    p.add_argument("--seed", type=int, default=0, help="seed of the round-robin shuffles")
    p.add_argument("--no-plot", action="store_true", help="do not draw loss_vs_time.png")
    p.add_argument(
        "--threads",
        type=int,
        help="CPU threads per run (OMP_NUM_THREADS/MKL_NUM_THREADS for every run, peers included; default: "
        "torch's default). On a shared machine 1 is far steadier: a busy core stalls every OpenMP barrier.",
    )
    p.add_argument("--note", action="append", default=[], help="free text stored in the results (repeatable)")
    p.add_argument(
        "--report-from",
        metavar="RESULTS_JSON",
        help="run nothing: recompute summary, ratios and time-to-quality from a results.json and rewrite the "
        "report, CSVs and plot next to it",
    )
    return p


def _resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU is visible to torch")
    return name


def environment(device: str) -> dict:
    import torch

    env = {
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu": cpuinfo().get("model name", ""),
        "cpu_count": cpu_count(),
        "pastiche": peers.version(),
        "git_commit": git(["rev-parse", "HEAD"]),
        "git_dirty": bool(git(["status", "--porcelain"])),
        "loadavg_start": list(os.getloadavg()),
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env.update(
            cuda_device=torch.cuda.get_device_name(0),
            cuda_runtime=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            gpu_sms=props.multi_processor_count,
            nvidia_smi=_nvidia_smi(),
        )
    return env


def _nvidia_smi() -> str | None:
    if not shutil.which("nvidia-smi"):
        return None
    try:
        return subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,mig.mode.current,clocks.max.sm", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def snapshot_steps(steps: int, points: int) -> list[int]:
    """Steps at which the curve pass keeps an image: every ``steps // points`` steps, and the last."""
    every = max(1, steps // max(1, points))
    return sorted({*range(0, steps + 1, every), steps})


def run_one(
    variant: Variant,
    inputs: Inputs,
    steps: int,
    device: str,
    run_dir: Path,
    timeout: float,
    curve_points: int = 0,
    threads: int | None = None,
) -> dict:
    """One run of one variant in a fresh process; returns its timing record (scores are added later)."""
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    steps = variant.steps or steps
    env = thread_env(threads)
    snaps = snapshot_steps(steps, curve_points) if curve_points else []
    rec: dict = {
        "variant": variant.name,
        "kind": variant.kind,
        "aux": variant.aux,
        "device": device,
        "size": inputs.size,
        "steps": steps,
        "dir": str(run_dir),
        "loadavg_before": os.getloadavg()[0],
    }
    if variant.kind in ("naive", "ours"):
        job = {
            "kind": variant.kind,
            "content": str(inputs.content),
            "style": str(inputs.style),
            "size": inputs.size,
            "steps": steps,
            "device": device,
            "out_dir": str(run_dir),
            "overrides": variant.options if variant.kind == "ours" else {},
            "snapshot_steps": snaps,
            "preview_every": (max(1, steps // curve_points) if curve_points else steps),
        }
        job_path = run_dir / "job.json"
        job_path.write_text(json.dumps(job, indent=1))
        cmd = [sys.executable, "-m", "bench.worker", str(job_path)]
        proc = launch(cmd, run_dir / "log.txt", cwd=REPO_ROOT, timeout=timeout, extra_env=env)
        rec.update(proc)
        try:
            res = json.loads((run_dir / "result.json").read_text())
        except (OSError, json.JSONDecodeError):
            res = {"ok": False, "error": f"no result.json (exit code {proc['rc']})"}
        rec["ok"] = bool(res.get("ok")) and proc["rc"] == 0 and proc.get("t_launch") is not None
        if not rec["ok"]:
            rec["error"] = res.get("error") or log_tail(proc["log"])
            return rec
        t0 = proc["t_launch"]
        rec.update(
            output=res["output"],
            startup_s=res["t_loop_start"] - t0,
            loop_s=res["t_loop_end"] - res["t_loop_start"],
            python_start_s=res["t_process"] - t0,
            import_torch_s=res["t_torch_imported"] - res["t_process"],
            in_loop_final_loss=res.get("final_loss"),
            cpu_s_per_step=res["cpu_loop_s"] / steps if res.get("cpu_loop_s") is not None else None,
            self_peak_rss_mb=res.get("self_peak_rss_mb"),
            config=res.get("config"),
            env=res.get("env"),
        )
        if "objective_matches_scorer" in res:
            rec["objective_matches_scorer"] = res["objective_matches_scorer"]
        for key in ("cuda_peak_allocated_mb", "cuda_peak_reserved_mb"):
            if key in res:
                rec[key] = res[key]
        rec["snapshots"] = [
            {"step": s["step"], "t_since_launch": s["t"] - t0, "t_since_loop": s["t"] - res["t_loop_start"],
             "path": s["path"]}
            for s in res.get("snapshots", [])
        ]  # fmt: skip
    else:  # pastiche
        output = run_dir / "output.png"
        workspace = None if variant.aux else run_dir / "workspace"
        every = max(1, steps // curve_points) if curve_points else steps
        args = peers.pastiche_args(
            variant.preset or "pastiche",
            variant.options,
            inputs.content,
            inputs.style,
            output,
            inputs.size,
            steps,
            device,
            workspace,
            every,
        )
        mem_out = run_dir / "cuda_mem.json"
        cmd = peers.command(args, device, mem_out)
        proc = launch(cmd, run_dir / "log.txt", cwd=REPO_ROOT, timeout=timeout, extra_env=env)
        rec.update(proc)
        rec["ok"] = proc["rc"] == 0 and output.is_file() and proc.get("t_launch") is not None
        rec["config"] = {"preset": variant.preset, "flags": args}
        if not rec["ok"]:
            rec["error"] = log_tail(proc["log"])
            return rec
        rec["output"] = str(output)
        if mem_out.is_file():
            rec.update(json.loads(mem_out.read_text()))
        if workspace is not None:
            t0 = proc["t_launch"]
            stamps = peers.workspace_stamps(workspace)
            if steps not in {s for s, _, _ in stamps}:
                stamps.append((steps, output.stat().st_mtime, output))
            by_step = {s: (m, p) for s, m, p in stamps}
            if 0 in by_step:
                t_first = by_step[0][0]
                rec["startup_s"] = t_first - t0
                rec["loop_s"] = by_step[steps][0] - t_first
                rec["loop_note"] = "workspace PNG mtimes, step 0 to step N (includes one PNG save)"
                rec["snapshots"] = [
                    {"step": s, "t_since_launch": m - t0, "t_since_loop": m - t_first, "path": str(p)}
                    for s, (m, p) in sorted(by_step.items())
                    if not snaps or s in snaps
                ]
    if rec.get("loop_s") is not None:
        rec["s_per_step"] = rec["loop_s"] / steps
    rec["peak_mb"] = rec.get("cuda_peak_allocated_mb") if device == "cuda" else rec.get("peak_rss_mb")
    rec["peak_mb_kind"] = "torch.cuda.max_memory_allocated" if device == "cuda" else "peak RSS of the process"
    return rec


def _score_all(
    runs: list[dict], curves: list[dict], inputs: dict[int, Inputs], score_device: str, log=print
) -> dict[int, dict]:
    from .score import Scorer

    init_scores: dict[int, dict] = {}
    for size, inp in inputs.items():
        started = time.perf_counter()
        scorer = Scorer(inp.content, inp.style, score_device)
        init_scores[size] = scorer(inp.content)
        n = 0
        for rec in [r for r in (*runs, *curves) if r["size"] == size and r.get("ok")]:
            rec["score"] = scorer(rec["output"])
            n += 1
            for snap in rec.get("snapshots", []):
                try:
                    snap["score"] = scorer(snap["path"])["total"]
                except ValueError:  # a coarse scale of a coarse-to-fine run: not comparable at this size
                    snap["score"] = None
                n += 1
        log(f"  scored {n} images at {size} px in {time.perf_counter() - started:.1f} s")
    return init_scores


def rerender(path: Path, plot: bool = True) -> int:
    """Rebuild summary, ratios, time to quality, report.txt, CSVs and plot from a saved results.json."""
    results = json.loads(path.read_text())
    fields = {f.name for f in dataclasses.fields(Variant)}
    variants = [Variant(**{k: v for k, v in d.items() if k in fields}) for d in results["meta"]["variants"]]
    variants = [v for v in variants if not v.aux]
    runs, curves = results["runs"], results["curves"]
    results["summary"] = report.summarize(runs, variants)
    results["ratios"] = report.ratios(runs, results["summary"], variants)
    results["time_to_quality"] = report.time_to_quality(curves)
    out = path.parent
    path.write_text(json.dumps(results, indent=1, default=str))
    report.write_csv(out, runs, curves, results["summary"])
    text = report.render(results)
    (out / "report.txt").write_text(text)
    print(text)
    if plot:
        init = {int(k): v for k, v in results["init_scores"].items()}
        print(report.plot(curves, init, out / "loss_vs_time.png"))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.report_from:
        return rerender(Path(args.report_from), plot=not args.no_plot)
    device = _resolve_device(args.device)
    defaults = DEFAULTS[device]
    sizes = args.sizes or defaults["sizes"]
    steps = args.steps or defaults["steps"]
    repeats = args.repeats or defaults["repeats"]
    score_device = args.score_device or device
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    ours_set: dict[str, object] = {}
    for item in args.ours_set:
        ours_set.update(parse_pairs(item))

    have_pastiche = peers.available() and not args.no_pastiche
    specs = args.variants or ["naive", "ours", "pastiche", "pastiche-seedloss"]
    variants: list[Variant] = []
    notes: list[str] = list(args.note)
    for spec in specs:
        v = parse_variant(spec, ours_set)
        if v.kind == "pastiche" and not have_pastiche:
            notes.append(f"{spec}: skipped ({'--no-pastiche' if args.no_pastiche else 'pastiche is not installed'})")
            continue
        variants.append(v)
    if not variants:
        raise SystemExit("no variant to run")
    timed = list(variants)
    if any(v.kind == "pastiche" for v in variants) and not args.no_pastiche_startup:
        timed.append(Variant("pastiche@1step", "pastiche", preset="pastiche", aux=True, steps=1))

    print(f"bench: device={device} sizes={sizes} steps={steps} repeats={repeats} threads={args.threads} out={out}")
    print(f"bench: variants: {', '.join(v.name for v in timed)}")
    for note in notes:
        print(f"bench: {note}")
    inputs, input_record = prepare(out / "inputs", sizes, args.content, args.style)
    print(f"bench: content {input_record['content_source']}; style {input_record['style_source']}")
    env = environment(device)

    cold = None
    if args.cold_start:
        from . import coldstart

        print("bench: cold start ...")
        cold = coldstart.measure(out / "coldstart", device, repeats, threads=args.threads)

    rng = random.Random(args.seed)
    runs: list[dict] = []
    started = time.perf_counter()
    for size in sizes:
        for rep in range(repeats):
            order = list(timed)
            rng.shuffle(order)
            for v in order:
                run_dir = out / "runs" / str(size) / slug(v.name) / f"r{rep}"
                rec = run_one(v, inputs[size], steps, device, run_dir, args.timeout, threads=args.threads)
                rec["repeat"] = rep
                runs.append(rec)
                print(report.run_line(rec, time.perf_counter() - started), flush=True)

    curves: list[dict] = []
    if args.curve_points > 0:
        for size in sizes:
            for v in variants:
                run_dir = out / "runs" / str(size) / slug(v.name) / "curve"
                rec = run_one(v, inputs[size], steps, device, run_dir, args.timeout, args.curve_points, args.threads)
                rec["repeat"] = "curve"
                curves.append(rec)
                print(report.run_line(rec, time.perf_counter() - started), flush=True)

    print("bench: scoring (the judge: bench.score, fp32, on the saved PNGs) ...")
    init_scores = _score_all(runs, curves, inputs, score_device)

    summary = report.summarize(runs, variants)
    ratios = report.ratios(runs, summary, variants)
    ttq = report.time_to_quality(curves)
    from .score import SCORER_SPEC, weights_sha256

    results = {
        "meta": {
            "command": " ".join(["python", "-m", "bench", *(argv if argv is not None else sys.argv[1:])]),
            "device": device,
            "sizes": sizes,
            "steps": steps,
            "repeats": repeats,
            "variants": [dataclasses.asdict(v) for v in timed],
            "ours_set": ours_set,
            "threads_per_run": args.threads,
            "score_device": score_device,
            "scorer": {**SCORER_SPEC, "weights_sha256": weights_sha256()},
            "inputs": input_record,
            "env": env,
            "timing_notes": report.TIMING_NOTES,
            "wall_s": time.perf_counter() - started,
            "loadavg_end": list(os.getloadavg()),
        },
        "init_scores": {str(k): v for k, v in init_scores.items()},
        "runs": runs,
        "curves": curves,
        "summary": summary,
        "ratios": ratios,
        "time_to_quality": ttq,
        "cold_start": cold,
        "notes": notes,
    }
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    report.write_csv(out, runs, curves, summary)
    text = report.render(results)
    (out / "report.txt").write_text(text)
    print(text)
    if not args.no_plot:
        print(report.plot(curves, init_scores, out / "loss_vs_time.png"))
    print(f"bench: wrote {out / 'results.json'}, runs.csv, summary.csv, report.txt")
    return 0 if all(r.get("ok") for r in runs) else 1
