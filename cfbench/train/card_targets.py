"""The bundled model card's verdicts on its held-out numbers (`cfbench.train.bundle.heldout_numbers`).

`targets`: whether restoring at w = 1 keeps the LQ's PSNR and the GT's colours. `w_tradeoff`: whether the w
trade-off has CodeFormer's shape, fidelity (identity, landmarks) best at w = 1 and quality (NIQE) best at w = 0
(the paper's Fig. 6). Both are plain checks on the numbers, so a card states what the model does, whatever it is.
"""

from __future__ import annotations

from typing import Any

CHROMA_TARGET = 0.9

# metric column -> (whether higher is better, the w where CodeFormer's trade-off puts its best value)
TRADEOFF_SHAPE: dict[str, tuple[bool, float]] = {
    "identity_cos[dlib]": (True, 1.0),
    "lmd[dlib]": (False, 1.0),
    "niqe": (False, 0.0),
}


def targets(heldout: dict[str, Any]) -> dict[str, dict[str, bool]]:
    """Per preset of `heldout`: `psnr_w1_ge_lq` (restoring at w = 1 does not lower the PSNR below the LQ's) and
    `chroma_w1_ge_target` (chroma correlation at w = 1 >= CHROMA_TARGET)."""
    return {
        preset: {
            "psnr_w1_ge_lq": row["w=1"]["psnr"] >= row["lq"]["psnr"],
            "chroma_w1_ge_target": row["w=1"]["chroma_corr"] >= CHROMA_TARGET,
        }
        for preset, row in heldout.items()
    }


def w_tradeoff(heldout: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per preset of `heldout` and metric of TRADEOFF_SHAPE present in its rows: the w of the best mean value
    (`best_w`), and `codeformer_shape`, whether every one of them is where CodeFormer's trade-off puts it."""
    out: dict[str, dict[str, Any]] = {}
    for preset, row in heldout.items():
        ws = {float(k.split("=", 1)[1]): v for k, v in row.items() if k.startswith("w=")}
        best = {}
        for metric, (higher, _) in TRADEOFF_SHAPE.items():
            values = {w: v[metric] for w, v in ws.items() if v.get(metric) is not None}
            if values:
                best[metric] = (max if higher else min)(values, key=values.get)
        shape = all(best[m] == TRADEOFF_SHAPE[m][1] for m in best)
        out[preset] = {"best_w": best, "codeformer_shape": bool(best) and shape}
    return out
