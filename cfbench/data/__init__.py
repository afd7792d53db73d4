"""Datasets of aligned faces for evaluation (`cfbench datasets list`).

Every dataset yields `FaceSample(id, gt, lq, meta)` with float32 RGB (3, 512, 512) tensors in [0, 1]:

- the released test sets ``celeba-test``, ``lfw-test``, ... (`cfbench.data.released`), ``folder:PATH``
  (`cfbench.data.folder`), ``hf:NAME[:split]`` (`cfbench.data.hf`), ``demo`` / ``demo-lq``
  (`cfbench.data.demo`), built by `get_dataset`;
- `DegradedDataset` (`cfbench.data.synth`): LQ synthesized from GT at a severity, reproducibly per image;
- image loading, the resize policy and its cache: `cfbench.data.faces`; the interface: `cfbench.data.base`.
"""

from cfbench.data.base import FaceDataset, FaceSample, Item, SourceDataset
from cfbench.data.faces import FACE_SIZE, RESIZE_POLICY, load_face, resize_face
from cfbench.data.registry import DATASETS, DatasetEntry, get_dataset, list_datasets, open_dataset
from cfbench.data.synth import DegradedDataset, parse_dataset_severity, with_severity

__all__ = [
    "DATASETS",
    "FACE_SIZE",
    "RESIZE_POLICY",
    "DatasetEntry",
    "DegradedDataset",
    "FaceDataset",
    "FaceSample",
    "Item",
    "SourceDataset",
    "get_dataset",
    "list_datasets",
    "load_face",
    "open_dataset",
    "parse_dataset_severity",
    "resize_face",
    "with_severity",
]
