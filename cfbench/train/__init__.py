"""Training the three CodeFormer stages (`cfbench train stage1|stage2|stage3`; docs/training.md).

`config` (a stage's official defaults and the YAML overrides), `stages` (what each stage freezes and its generator
losses), `losses`, `dataset` (batches with LQ synthesized on the fly), `loop` (AMP, EMA, accumulation, resumable
checkpoints, logs), `distributed` (DDP under torchrun), `checkpointing`, `ema`, and `bundle` (exporting a
three-stage run as the bundled demo checkpoint).
"""
