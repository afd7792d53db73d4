"""Images are read as viewers show them (issue 20, point 4; reliability probe IN5, IN9, IN10, IN11, IN15, MX4): one
reader (`cfbench.imageio.decode_image`) for datasets, restore, metrics and training, with EXIF orientation applied
and a stated policy for 16-bit, palette, CMYK, gray and alpha files."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from cfbench.cli import main
from cfbench.data.faces import FileSource, load_face
from cfbench.errors import BadInputError
from cfbench.imageio import decode_image, image_size, read_image


def _picture(h: int = 24, w: int = 40) -> np.ndarray:
    """An asymmetric RGB uint8 picture (H, W, 3): every flip and rotation of it differs."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x * y) % 256], axis=-1).astype(np.uint8)


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _with_orientation(upright: np.ndarray, orientation: int, fmt: str = "PNG") -> bytes:
    """Bytes whose stored pixels, once the EXIF `orientation` is applied, show `upright` (how phones save photos)."""
    inverse = {2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}[orientation]  # the stored pixels = the inverse transform
    exif = Image.Exif()
    exif[0x0112] = inverse
    stored = ImageOps.exif_transpose(_tagged(Image.fromarray(upright), inverse))
    exif[0x0112] = orientation
    return _encode(stored, fmt, exif=exif.tobytes(), **({"quality": 100, "subsampling": 0} if fmt == "JPEG" else {}))


def _tagged(img: Image.Image, orientation: int) -> Image.Image:
    img.getexif()[0x0112] = orientation
    return img


def _as_uint8(t: torch.Tensor) -> np.ndarray:
    return t.mul(255).round().byte().permute(1, 2, 0).numpy()


@pytest.mark.parametrize("orientation", range(2, 9))
def test_exif_orientation_is_applied_like_pillow(orientation):
    """Every EXIF orientation (lossless PNG eXIf) is undone exactly as Pillow's exif_transpose does."""
    upright = _picture()
    data = _with_orientation(upright, orientation)
    stored = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert stored.shape != upright.shape or not np.array_equal(stored, upright)  # the file is not upright as stored
    assert np.array_equal(_as_uint8(decode_image(data, "x")), upright)
    assert image_size(data) == upright.shape[:2]


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_rotated_jpeg_reads_upright_in_datasets_and_metrics(tmp_path, orientation):
    """IN11: a phone JPEG (pixels stored rotated, Orientation 3/6/8) reads upright in a dataset load and scores as
    the same face as its upright copy in `cfbench metrics` (the probe saw 10.5 dB)."""
    upright = np.asarray(Image.fromarray(_picture(64, 64)).resize((512, 512), Image.BICUBIC))
    jpeg = tmp_path / "pred" / "face.jpg"
    jpeg.parent.mkdir()
    jpeg.write_bytes(_with_orientation(upright, orientation, "JPEG"))
    gt = tmp_path / "gt" / "face.png"
    gt.parent.mkdir()
    Image.fromarray(upright).save(gt)
    face, _ = load_face(FileSource(jpeg))
    assert np.abs(_as_uint8(face).astype(int) - upright).mean() < 2  # JPEG at quality 100, not rotated
    out = tmp_path / "scores.csv"
    assert main(["metrics", str(jpeg.parent), str(gt.parent), "--metrics", "psnr", "--out", str(out)]) == 0
    assert float(out.read_text().splitlines()[1].split(",")[1]) > 40


def test_16bit_png_is_scaled_by_65535():
    """16-bit gray and RGB PNG values v read as v / 65535 (not clipped or divided by 255)."""
    values = np.array([[0, 1, 257, 32768, 65535, 12345]], dtype=np.uint16)
    gray = decode_image(cv2.imencode(".png", values)[1].tobytes(), "x")
    assert gray.dtype == torch.float32 and gray.shape == (3, 1, 6)
    assert torch.equal(gray[0, 0], torch.from_numpy(values[0].astype(np.float32) / 65535))
    rgb = np.stack([values, values // 2, 65535 - values], axis=-1)
    ok, buf = cv2.imencode(".png", rgb[:, :, ::-1].copy())
    out = decode_image(buf.tobytes(), "x")
    assert torch.allclose(out.permute(1, 2, 0), torch.from_numpy(rgb.astype(np.float32) / 65535))


def test_palette_gray_cmyk_and_alpha_policy():
    """Palette expands to its RGB colours; gray repeats to 3 channels; CMYK JPEG converts to RGB; alpha is dropped
    (the RGB under it is kept, as the official CodeFormer's cv2.imread does)."""
    pic = _picture()
    pal = Image.fromarray(pic).quantize(64)
    assert np.array_equal(_as_uint8(decode_image(_encode(pal, "PNG"), "x")), np.asarray(pal.convert("RGB")))
    gray = pic[:, :, 0]
    assert np.array_equal(_as_uint8(decode_image(_encode(Image.fromarray(gray), "PNG"), "x")), np.stack([gray] * 3, -1))
    rgba = np.dstack([pic, np.arange(pic.size // 3, dtype=np.uint8).reshape(pic.shape[:2])])
    assert np.array_equal(_as_uint8(decode_image(_encode(Image.fromarray(rgba), "PNG"), "x")), pic)
    la = Image.fromarray(gray).convert("LA")
    assert np.array_equal(_as_uint8(decode_image(_encode(la, "PNG"), "x")), np.stack([gray] * 3, -1))
    cmyk = decode_image(_encode(Image.fromarray(pic).convert("CMYK"), "JPEG", quality=100), "x")
    assert np.abs(_as_uint8(cmyk).astype(int) - pic).mean() < 3


def test_metrics_refuse_gray_and_alpha_files():
    """`require_rgb` (metrics folders) refuses gray and RGBA files, naming the file."""
    with pytest.raises(BadInputError, match=r"^x\.png is RGBA"):
        decode_image(_encode(Image.fromarray(_picture()).convert("RGBA"), "PNG"), "x.png", require_rgb=True)
    with pytest.raises(BadInputError, match="grayscale"):
        decode_image(_encode(Image.fromarray(_picture()[:, :, 0]), "PNG"), "x.png", require_rgb=True)


@pytest.mark.parametrize(
    "make",
    [
        lambda: b"",
        lambda: b"not an image at all\n",
        lambda: _encode(Image.fromarray(_picture()), "PNG")[:200],
        lambda: _encode(Image.fromarray(_picture(256, 256)), "JPEG", quality=90)[:-300],
    ],
    ids=["empty", "text", "truncated-png", "truncated-jpeg"],
)
def test_corrupt_files_give_one_line_errors(tmp_path, make):
    """IN5/MX4: an empty, text, or truncated file raises one BadInputError line naming the file."""
    path = tmp_path / "bad.png"
    path.write_bytes(make())
    with pytest.raises(BadInputError) as err:
        read_image(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_float_tiff_is_refused(tmp_path):
    """A sample type other than 8/16-bit integers is refused, not divided by 255."""
    ok, buf = cv2.imencode(".tiff", _picture().astype(np.float32) / 255)
    with pytest.raises(BadInputError, match="float32 samples"):
        decode_image(buf.tobytes(), "f.tiff")


def test_no_module_decodes_images_outside_the_reader():
    """Every image read goes through `cfbench.imageio`: no other module of cfbench/ or reports/ calls
    cv2.imread / cv2.imdecode / PIL.Image.open (the standalone degradations package has its own, EXIF-aware reader)."""
    import ast

    root = Path(__file__).resolve().parents[2]
    decoders = {("cv2", "imread"), ("cv2", "imdecode"), ("Image", "open")}
    found = []
    for path in sorted([*root.glob("cfbench/**/*.py"), *root.glob("reports/**/*.py")]):
        if path.relative_to(root).as_posix() == "cfbench/imageio.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            f = node.func if isinstance(node, ast.Call) else None
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and (f.value.id, f.attr) in decoders:
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    assert found == []


def test_content_hash_changes_only_for_rotated_files(tmp_path):
    """GT-side caches are keyed by the dataset content hash: a dataset holding an EXIF-rotated file gets a hash of
    its own (its decoded pixels changed when orientation began to be applied); plain files keep theirs."""
    from cfbench.data import get_dataset
    from cfbench.hashing import content_hash, sha256_bytes

    def v1_hash(data: bytes) -> str:  # the documented recipe (cfbench.data.base), one file with id "a"
        head = [b"cfbench-dataset-v1", b"face512-u8-area-down-cubic-up-v1", b"gt", b"a"]
        return content_hash([*head, sha256_bytes(data).encode()])

    folder = tmp_path / "gt"
    folder.mkdir()
    plain = _encode(Image.fromarray(_picture(64, 64)), "PNG")
    (folder / "a.png").write_bytes(plain)
    assert get_dataset(f"folder:{tmp_path}").content_hash() == v1_hash(plain)
    rotated = _with_orientation(_picture(64, 64), 6)
    (folder / "a.png").write_bytes(rotated)
    assert get_dataset(f"folder:{tmp_path}").content_hash() != v1_hash(rotated)
