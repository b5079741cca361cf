"""Forward + backward of focalkit.dice_focal_loss against MONAI's DiceFocalLoss on (8, 4, 128, 128) float32 softmax
logits, with torch.utils.benchmark at 1 and 2 threads in one process.

MONAI's code path is the one written out in tests/test_segmentation_family.py; the installed MONAI is timed too when
present. Run on a quiet machine: python benchmarks/bench_segmentation.py
"""
import os
import sys
from pathlib import Path

import torch
import torch.utils.benchmark as benchmark

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import focalkit  # noqa: E402
from test_segmentation_family import monai_dice_focal  # noqa: E402

try:
    from monai.losses import DiceFocalLoss as MonaiDFL
except ImportError:
    MonaiDFL = None

g = torch.Generator().manual_seed(0)
x = torch.randn(8, 4, 128, 128, generator=g)
index = torch.randint(0, 4, (8, 128, 128), generator=g)
onehot = torch.nn.functional.one_hot(index, 4).movedim(-1, 1).float().contiguous()



def step(fn):
    leaf = x.clone().requires_grad_(True)
    fn(leaf).backward()

cases = {
    "focalkit dice_focal_loss (index targets)": lambda a: focalkit.dice_focal_loss(a, index),
    "focalkit dice_focal_loss (one-hot targets)": lambda a: focalkit.dice_focal_loss(a, onehot),
    "MONAI DiceFocalLoss code path, transcribed (one-hot)": lambda a: monai_dice_focal(a, onehot, softmax=True),
}
if MonaiDFL is not None:
    m = MonaiDFL(softmax=True)
    cases["MONAI DiceFocalLoss (installed, one-hot)"] = lambda a: m(a, onehot)
print(f"torch {torch.__version__}, focalkit {focalkit.__version__}, load average {os.getloadavg()}")
# agreement first
print({k: float(f(x)) for k, f in cases.items()})
results = []
for threads in (1, 2):
    torch.set_num_threads(threads)
    for name, fn in cases.items():
        t = benchmark.Timer(stmt="step(fn)", globals={"step": step, "fn": fn}, num_threads=threads,
                            label="fwd+bwd (8, 4, 128, 128) fp32 softmax", sub_label=name, description=f"{threads} thr")
        results.append(t.blocked_autorange(min_run_time=6.0))
benchmark.Compare(results).print()
for r in results:
    print(f"{r.task_spec.description:6s} {r.task_spec.sub_label:55s} median {r.median*1e3:8.2f} ms  IQR {r.iqr*1e3:6.2f} ms  runs {len(r.times)}")
