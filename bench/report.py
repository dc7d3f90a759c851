"""Turning run records into the summary table, the ratios, CSV files and the loss-vs-time plot."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

TIMING_NOTES = [
    "s/step: loop time / steps, measured inside the run from the first step to the last, excluding process "
    "start-up, imports, weight loading and target computation. ours: from the step-0 frame to the final frame "
    "(steps x (forward+backward) plus one PNG-ready frame); naive: time.time() around its loop; pastiche: "
    "modification times of its workspace PNGs of step 0 and step N (includes one PNG save).",
    "total s: wall time of the whole process as seen from outside (Python start, imports, weights, targets, loop, "
    "saving the output). pastiche@1step is pastiche's total for one step: its start-up cost, included in its total.",
    "startup s: process launch to the first step.",
    "CPU-time/step (naive and ours only, in JSON/CSV): process CPU time (all threads) over the loop / steps; less "
    "sensitive than wall time to other load on the machine.",
    "peak MB: CPU: peak RSS of the run's own process (os.wait4), which includes Python, torch and the weights; "
    "CUDA: torch.cuda.max_memory_allocated over the process.",
    "score: the judge's J (bench.score: frozen seed objective, fp32) of the saved uint8 PNG; lower is better.",
    "Timed runs and curve runs are separate processes: curve runs save intermediate images and are not timed in "
    "the table.",
]


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def run_line(rec: dict, elapsed: float) -> str:
    head = f"[{elapsed:7.1f}s] {rec['size']:>5} px  {rec['variant']:<22} rep {rec.get('repeat')!s:<5}"
    if not rec.get("ok"):
        return f"{head} FAILED: {str(rec.get('error', '')).strip().splitlines()[-1:]}"
    return (
        f"{head} total {rec['wall_s']:7.2f} s  loop {_fmt(rec.get('loop_s'), '7.2f')} s  "
        f"s/step {_fmt(rec.get('s_per_step'), '.4f')}  peak {_fmt(rec.get('peak_mb'), '.0f')} MB"
    )


def summarize(runs: list[dict], variants: list) -> list[dict]:
    """Medians (and ranges) per (size, variant) over the timed repeats."""
    names = [v.name for v in variants] + ["pastiche@1step"]
    rows = []
    for size in sorted({r["size"] for r in runs}):
        for name in names:
            group = [r for r in runs if r["size"] == size and r["variant"] == name]
            if not group:
                continue
            ok = [r for r in group if r.get("ok")]
            sps = [r["s_per_step"] for r in ok if r.get("s_per_step") is not None]
            scores = [r["score"]["total"] for r in ok if r.get("score")]
            row = {
                "variant": name,
                "kind": group[0]["kind"],
                "aux": group[0].get("aux", False),
                "device": group[0]["device"],
                "size": size,
                "steps": group[0]["steps"],
                "n": len(group),
                "n_ok": len(ok),
                "s_per_step_median": _median(sps),
                "cpu_s_per_step_median": _median([r.get("cpu_s_per_step") for r in ok]),
                "s_per_step_min": min(sps) if sps else None,
                "s_per_step_max": max(sps) if sps else None,
                "total_s_median": _median([r["wall_s"] for r in ok]),
                "total_s_min": min((r["wall_s"] for r in ok), default=None),
                "total_s_max": max((r["wall_s"] for r in ok), default=None),
                "loop_s_median": _median([r.get("loop_s") for r in ok]),
                "startup_s_median": _median([r.get("startup_s") for r in ok]),
                "peak_mb_median": _median([r.get("peak_mb") for r in ok]),
                "peak_mb_max": max((r["peak_mb"] for r in ok if r.get("peak_mb") is not None), default=None),
                "score_median": _median(scores),
                "score_min": min(scores) if scores else None,
                "score_max": max(scores) if scores else None,
                "content_term_median": _median([r["score"]["content"] for r in ok if r.get("score")]),
                "style_term_median": _median([r["score"]["style"] for r in ok if r.get("score")]),
                "objective_matches_scorer": group[0].get("objective_matches_scorer"),
                "errors": sorted({str(r.get("error", "")).strip()[-300:] for r in group if not r.get("ok")}),
            }
            rows.append(row)
    return rows


def _paired(runs: list[dict], size: int, a: str, b: str, key: str) -> float | None:
    """Median over repeats of a_r / b_r (the same round, so slow phases of the machine cancel)."""
    by_rep: dict = {}
    for r in runs:
        if r["size"] == size and r.get("ok") and r.get(key) is not None and r["variant"] in (a, b):
            by_rep.setdefault(r["repeat"], {})[r["variant"]] = r[key]
    ratios = [d[a] / d[b] for d in by_rep.values() if a in d and b in d and d[b]]
    return statistics.median(ratios) if ratios else None


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def ratios(runs: list[dict], summary: list[dict], variants: list) -> list[dict]:
    """ours-vs-naive and ours-vs-pastiche ratios per size (time per step, total time, score)."""
    rows = []
    row_of = {(r["size"], r["variant"]): r for r in summary}
    ours = [v.name for v in variants if v.kind == "ours"]
    others = [v.name for v in variants if v.kind in ("naive", "pastiche")]
    for size in sorted({r["size"] for r in summary}):
        startup_probe = row_of.get((size, "pastiche@1step"))
        for o in ours:
            so = row_of.get((size, o))
            if not so:
                continue
            for other in others:
                sb = row_of.get((size, other))
                if not sb:
                    continue
                entry = {
                    "size": size,
                    "ours": o,
                    "vs": other,
                    "s_per_step_ratio": _div(so["s_per_step_median"], sb["s_per_step_median"]),
                    "s_per_step_ratio_paired": _paired(runs, size, o, other, "s_per_step"),
                    "cpu_s_per_step_ratio": _div(so.get("cpu_s_per_step_median"), sb.get("cpu_s_per_step_median")),
                    "total_ratio": _div(so["total_s_median"], sb["total_s_median"]),
                    "total_ratio_paired": _paired(runs, size, o, other, "wall_s"),
                    "score_ratio": _div(so["score_median"], sb["score_median"]),
                }
                entry["speedup_per_step"] = _div(1.0, entry["s_per_step_ratio"])
                if other.startswith("pastiche") and startup_probe and startup_probe.get("total_s_median"):
                    # Start-up-corrected totals: each side's total minus its own start-up (launch to first step).
                    entry["total_minus_startup_ratio"] = _div(
                        _sub(so["total_s_median"], so["startup_s_median"]),
                        _sub(sb["total_s_median"], sb["startup_s_median"]),
                    )
                    entry["pastiche_1step_total_s"] = startup_probe["total_s_median"]
                rows.append(entry)
    return rows


def _sub(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


def time_to_quality(curves: list[dict], slack: float = 1.05) -> dict:
    """From the curve runs: when each variant's saved images first reach a target J.

    Targets per size: ``best`` = ``slack`` × the best final curve score of any variant; and, for each ``ours``
    variant, ``<name> final`` = that variant's own final score (how soon the others reach what ours ends with).
    """
    out: dict = {}
    for size in sorted({c["size"] for c in curves}):
        group = [c for c in curves if c["size"] == size and c.get("ok") and c.get("snapshots")]
        finals = {c["variant"]: c["snapshots"][-1].get("score") for c in group}
        finals = {k: v for k, v in finals.items() if v is not None}
        if not finals:
            continue
        targets = {"best": (slack * min(finals.values()), f"{slack} x the best final curve score at this size")}
        for c in group:
            if c["kind"] == "ours" and c["variant"] in finals:
                targets[f"{c['variant']} final"] = (finals[c["variant"]], f"the final curve score of {c['variant']}")
        entry = {}
        for label, (target, definition) in targets.items():
            hits = {}
            for c in group:
                hit = next((s for s in c["snapshots"] if s.get("score") is not None and s["score"] <= target), None)
                hits[c["variant"]] = (
                    {"step": hit["step"], "t_since_launch": hit["t_since_launch"], "t_since_loop": hit["t_since_loop"]}
                    if hit
                    else None
                )
            entry[label] = {"target": target, "definition": definition, "variants": hits}
        out[str(size)] = entry
    return out


RUN_FIELDS = [
    "variant", "kind", "aux", "device", "size", "steps", "repeat", "ok", "s_per_step", "cpu_s_per_step", "loop_s",
    "wall_s",
    "loadavg_before", "startup_s", "peak_mb", "peak_rss_mb", "cuda_peak_allocated_mb", "score_total", "score_content",
    "score_style", "in_loop_final_loss", "cpu_user_s", "cpu_sys_s", "error",
]  # fmt: skip
SUMMARY_FIELDS = [
    "variant", "kind", "aux", "device", "size", "steps", "n", "n_ok", "s_per_step_median", "cpu_s_per_step_median",
    "s_per_step_min",
    "s_per_step_max", "total_s_median", "total_s_min", "total_s_max", "loop_s_median", "startup_s_median",
    "peak_mb_median", "peak_mb_max", "score_median", "score_min", "score_max", "content_term_median",
    "style_term_median", "objective_matches_scorer",
]  # fmt: skip


def write_csv(out: Path, runs: list[dict], curves: list[dict], summary: list[dict]) -> None:
    with open(out / "runs.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, RUN_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for r in [*runs, *curves]:
            score = r.get("score") or {}
            writer.writerow(
                {
                    **r,
                    "score_total": score.get("total"),
                    "score_content": score.get("content"),
                    "score_style": score.get("style"),
                    "error": str(r.get("error", "")).strip().replace("\n", " | ")[-300:],
                }
            )
    with open(out / "summary.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, SUMMARY_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(summary)


def render(results: dict) -> str:
    """The human-readable report: environment, table, ratios, time-to-quality, cold start, notes."""
    meta = results["meta"]
    env = meta["env"]
    lines = [
        "",
        f"Device: {meta['device']}  {env.get('cuda_device') or env.get('cpu')}  "
        f"(torch {env.get('torch')}, {meta.get('threads_per_run') or env.get('torch_threads')} threads per run"
        + (f", CUDA {env.get('cuda_runtime')}" if env.get("cuda_runtime") else "")
        + f"; pastiche {env.get('pastiche')}; commit {str(env.get('git_commit') or 'unknown (no git)')[:16]}"
        + (" dirty" if env.get("git_dirty") else "")
        + ")",
        f"Inputs: content {meta['inputs']['content_source']}; style {meta['inputs']['style_source']}",
        f"Steps {meta['steps']}, repeats {meta['repeats']} (round-robin, shuffled), each run in a fresh process. "
        f"Load average (1 min): at start {env.get('loadavg_start', ['?'])[0]}, at end "
        f"{meta.get('loadavg_end', ['?'])[0]}, median before a run "
        f"{_fmt(_median([r.get('loadavg_before') for r in results['runs']]), '.2f')}.",
        "",
    ]
    header = (
        f"{'variant':<24} {'device':<6} {'size':>5} {'steps':>5} {'s/step med':>10} {'[min-max]':>17} "
        f"{'total s':>8} {'startup':>8} {'peak MB':>8} {'score med':>11} {'score/init':>10}"
    )
    lines += [header, "-" * len(header)]
    for row in results["summary"]:
        init = results["init_scores"].get(str(row["size"]), {}).get("total")
        rng = f"[{row['s_per_step_min']:.4f}-{row['s_per_step_max']:.4f}]" if row["s_per_step_min"] is not None else "-"
        fail = f"  ({row['n'] - row['n_ok']} FAILED)" if row["n_ok"] < row["n"] else ""
        lines.append(
            f"{row['variant']:<24} {row['device']:<6} {row['size']:>5} {row['steps']:>5} "
            f"{_fmt(row['s_per_step_median'], '.4f'):>10} {rng:>17} {_fmt(row['total_s_median'], '.2f'):>8} "
            f"{_fmt(row['startup_s_median'], '.2f'):>8} {_fmt(row['peak_mb_median'], '.0f'):>8} "
            f"{_fmt(row['score_median'], '.4g'):>11} {_fmt(_div(row['score_median'], init), '.4f'):>10}{fail}"
        )
    lines.append("")
    for size, init in results["init_scores"].items():
        lines.append(
            f"init score (the content image itself) at {size} px: {init['total']:.4g} "
            f"(content {init['content']:.3g}, style {init['style']:.4g})"
        )
    lines += ["", "Ratios (ours / other; < 1 means ours is faster or reaches a lower J):"]
    for r in results["ratios"]:
        extra = ""
        if r.get("total_minus_startup_ratio") is not None:
            extra = (
                f"  total-startup {_fmt(r['total_minus_startup_ratio'])}"
                f"  (pastiche 1-step total {r['pastiche_1step_total_s']:.2f} s)"
            )
        lines.append(
            f"  {r['size']:>5} px  {r['ours']} / {r['vs']}: s/step {_fmt(r['s_per_step_ratio'])} "
            f"(paired {_fmt(r['s_per_step_ratio_paired'])}, speed-up {_fmt(r['speedup_per_step'], '.2f')}x)  "
            f"total {_fmt(r['total_ratio'])} (paired {_fmt(r['total_ratio_paired'])})  "
            f"score {_fmt(r['score_ratio'], '.4f')}"
            + (f"  CPU-time/step {_fmt(r['cpu_s_per_step_ratio'])}" if r.get("cpu_s_per_step_ratio") else "")
            + extra
        )
    if results.get("time_to_quality"):
        lines += ["", "Time to quality (curve runs, images saved every steps/N; first one with J <= target):"]
        for size, targets in results["time_to_quality"].items():
            for label, entry in targets.items():
                parts = []
                for name, hit in entry["variants"].items():
                    parts.append(
                        f"{name} " + (f"step {hit['step']} / {hit['t_since_loop']:.1f} s in loop / "
                                      f"{hit['t_since_launch']:.1f} s from launch" if hit else "not reached")
                    )  # fmt: skip
                lines.append(f"  {size} px, target {label} ({entry['target']:.4g}): " + "; ".join(parts))
    cold = results.get("cold_start")
    if cold:
        lines += ["", f"Cold start ({cold['device']}, fresh process, median of {cold['repeats']}):"]
        for name, s in cold["summary"].items():
            if "skipped" in s or "error" in s:
                lines.append(f"  {name}: {s.get('skipped') or s.get('error')}")
                continue
            vals = ", ".join(
                f"{k.removesuffix('_median')} {v:.2f}" for k, v in s.items() if k.endswith("_median") and "cpu" not in k
            )
            lines.append(f"  {name}: {vals}")
    lines += ["", "Notes:", *(f"  - {n}" for n in results["meta"]["timing_notes"] + results.get("notes", []))]
    return "\n".join(lines)


def plot(curves: list[dict], init_scores: dict, path: Path) -> str:
    """Judge's J vs wall time (from launch, and from the first step) per size; returns a status line."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "bench: matplotlib is not installed; skipped loss_vs_time.png (pip install -r bench/requirements.txt)"
    sizes = sorted({c["size"] for c in curves if c.get("snapshots")})
    if not sizes:
        return "bench: no curve data; skipped the plot (--curve-points 0?)"
    fig, axes = plt.subplots(2, len(sizes), figsize=(6 * len(sizes), 8), squeeze=False)
    for col, size in enumerate(sizes):
        for row, key, label in ((0, "t_since_launch", "s since process launch"), (1, "t_since_loop", "s since step 0")):
            ax = axes[row][col]
            for c in curves:
                if c["size"] != size or not c.get("snapshots"):
                    continue
                pts = [(s[key], s["score"]) for s in c["snapshots"] if s.get("score") is not None]
                if pts:
                    xs, ys = zip(*pts, strict=True)
                    ax.plot(xs, ys, marker="o", markersize=3, label=c["variant"])
            ax.set_yscale("log")
            ax.set_xlabel(label)
            ax.set_ylabel("judge J (saved PNG)")
            ax.set_title(f"{size} px, {curves[0]['device']}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"bench: wrote {path}"
