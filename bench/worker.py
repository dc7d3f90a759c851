"""One timed run of one variant in a fresh process: ``python -m bench.worker JOB.json``.

The orchestrator (:mod:`bench.run`) starts this module once per run so that every run has its own peak memory and
nothing (allocator caches, oneDNN/cuDNN plans, loaded weights) carries over from the run before. The job file
says what to run; the worker writes ``result.json``, ``output.png`` and (when asked) snapshot PNGs into the
job's folder. Times are ``time.time()`` wall-clock stamps so that the orchestrator can relate them to the moment it
launched the process.
"""

from __future__ import annotations

import time

T_PROCESS = time.time()  # as early as possible: the process's start, seen from inside

import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

T_TORCH = time.time()


def _device_info(device: torch.device) -> dict:
    info = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["cuda_device"] = torch.cuda.get_device_name(device)
        info["cuda_runtime"] = torch.version.cuda
    return info


def _peak_rss_mb() -> float | None:
    """This process's peak RSS since its exec (VmHWM; ru_maxrss would also count memory inherited at fork)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_naive(job: dict, out_dir: Path, device: torch.device) -> dict:
    from style_transfer.images import load_image, pil_to_tensor, tensor_to_pil

    from .naive import naive_stylize

    content = pil_to_tensor(load_image(job["content"]), device)
    style = pil_to_tensor(load_image(job["style"]), device)
    res = naive_stylize(content, style, job["steps"], device, frozenset(job.get("snapshot_steps") or ()))
    tensor_to_pil(res["image"]).save(out_dir / "output.png")
    snaps = []
    for step, stamp, image in res["snapshots"]:
        path = out_dir / f"snap_{step:05d}.png"
        tensor_to_pil(image).save(path)
        snaps.append({"step": step, "t": stamp, "path": str(path)})
    return {
        "t_loop_start": res["t_loop_start"],
        "t_loop_end": res["t_loop_end"],
        "cpu_loop_s": res["cpu_loop_s"],
        "final_loss": res["losses"][-1] if res["losses"] else None,
        "first_loss": res["losses"][0] if res["losses"] else None,
        "snapshots": snaps,
        "config": res["config"],
    }


def run_ours(job: dict, out_dir: Path, device: torch.device) -> dict:
    import dataclasses

    from style_transfer.config import StyleConfig, field_spec
    from style_transfer.engine import stylize

    from .score import scorer_matches

    steps = job["steps"]
    snapshot_steps = set(job.get("snapshot_steps") or ())
    every = job.get("preview_every") or steps
    limit = field_spec("preview_every").metadata.get("max")
    if limit:
        every = min(every, int(limit))  # a few more frames on very long runs, rather than a refused setting
    overrides = dict(job.get("overrides") or {})
    settings = {"size": job["size"], "steps": steps, "device": device.type, "preview_every": every, **overrides}
    cfg = dataclasses.replace(StyleConfig(), **settings).validate()
    t_first = cpu_first = None
    final = None
    snaps = []
    pending = []
    for frame in stylize(job["content"], job["style"], cfg):
        now = time.time()
        if t_first is None:
            t_first, cpu_first = now, time.process_time()
        if frame.step in snapshot_steps:
            pending.append((frame.step, now, frame.image))
        final = frame
    t_end, cpu_end = time.time(), time.process_time()
    final.image.save(out_dir / "output.png")
    for step, stamp, image in pending:
        path = out_dir / f"snap_{step:05d}.png"
        image.save(path)
        snaps.append({"step": step, "t": stamp, "path": str(path)})
    return {
        "t_loop_start": t_first,
        "t_loop_end": t_end,
        "cpu_loop_s": cpu_end - cpu_first,
        "final_loss": final.losses.get("total"),
        "final_losses": final.losses,
        "snapshots": snaps,
        "config": cfg.to_dict(),
        "objective_matches_scorer": scorer_matches(cfg),
        "loop_note": "from the step-0 frame (after its forward) to the final frame (after a last forward)",
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job_path = Path(argv[0])
    job = json.loads(job_path.read_text())
    out_dir = Path(job["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(job["device"])
    result: dict = {"t_process": T_PROCESS, "t_torch_imported": T_TORCH, "ok": False}
    try:
        if device.type == "cuda":
            torch.cuda.init()
            torch.cuda.reset_peak_memory_stats(device)
        runner = {"naive": run_naive, "ours": run_ours}[job["kind"]]
        result.update(runner(job, out_dir, device))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            result["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
            result["cuda_peak_reserved_mb"] = torch.cuda.max_memory_reserved(device) / 2**20
        result["output"] = str(out_dir / "output.png")
        result["ok"] = True
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()
    result["t_exit"] = time.time()
    result["self_peak_rss_mb"] = _peak_rss_mb()
    result["env"] = _device_info(device)
    (out_dir / "result.json").write_text(json.dumps(result, indent=1, default=str))
    if not result["ok"]:
        sys.stderr.write(result.get("traceback", result.get("error", "")))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
