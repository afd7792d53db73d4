"""Align the side faces of the demo GT set (cfbench/data/demo/gt/aflw_*.png) from the shared large-pose photos.

    python scripts/align_side_faces.py ../shared/faces/side cfbench/data/demo/gt

Each photo's centre face is found by the dlib backend (68 landmarks -> five points) and warped to the FFHQ 512
template by cfbench's own alignment (`cfbench.face.photo.detect_and_align`, `cfbench.face.align.align_face`); the
crop is written as an 8-bit RGB PNG named <stem>.png, and its GT head pose (`cfbench.eval.gt_pose`, what the
side-face report uses) is printed. Licences and hashes go into the demo set's SOURCES.md by hand.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from cfbench.eval.gt_pose import gt_head_pose, pose_backend
from cfbench.face import get_backend
from cfbench.face.photo import detect_and_align
from cfbench.imageio import read_image, write_image

FILES = ("aflw_00408.jpg", "aflw_02246.jpg")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    backend = get_backend("dlib")
    pose, _ = pose_backend()
    for name in FILES:
        img = read_image(args.src / name)
        (face,) = detect_and_align(img, 512, only_center_face=True, backend=backend)
        crop = torch.from_numpy(face.crop).permute(2, 0, 1).float().div(255)
        dst = args.out / f"{Path(name).stem}.png"
        write_image(dst, crop)
        yaw, pitch, roll = gt_head_pose(pose, crop)
        print(f"{dst}: yaw {yaw:.1f}, pitch {pitch:.1f}, roll {roll:.1f}")


if __name__ == "__main__":
    main()
