"""Model benchmark: `python benchmarks/bench_model.py [cfbench bench model options]`.

Defaults measure the official-size CodeFormer on the available device: encode/decode time per face at batch 1 and
4 (and 16, 64 with bf16 autocast and torch.compile on CUDA), GFLOP per part, and the 11-value w-sweep ratio of the
split API against full forwards.
"""

import sys

import torch

from cfbench.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if not args:
        if torch.cuda.is_available():
            args = ["--device", "cuda", "--batch", "16,64", "--precision", "fp32,bf16", "--compile"]
        else:
            args = ["--device", "cpu", "--batch", "1,4", "--repeats", "2"]
    sys.exit(main(["bench", "model", *args]))
