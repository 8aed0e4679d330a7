"""Measure how OpenCV's Haar box relates to the framing of the training faces (sets faces.CROP_MARGIN).

Dataset faces are enlarged 5x and pasted on a flat background; for each face the detector finds, the
script prints where the original 48x48 frame lies relative to the box. The margin that makes a crop
match the training framing is (frame side / box side - 1) / 2.

    python -m benchmarks.face_framing [--data DIR] [--n 400]
"""

import argparse

import numpy as np
from PIL import Image

from fer.data import find_data_dir, load_folder
from fer.faces import FaceDetector

parser = argparse.ArgumentParser()
parser.add_argument("--data")
parser.add_argument("--n", type=int, default=400)
args = parser.parse_args()

faces = load_folder(find_data_dir(args.data), "validation")
rng = np.random.default_rng(0)
detector = FaceDetector()
scale, ratios, offsets, found = 5, [], [], 0
for i in rng.permutation(len(faces))[: args.n]:
    side = 48 * scale
    canvas = np.full((side * 2, side * 2), 128, np.uint8)
    face = np.asarray(Image.fromarray(faces.images[i]).resize((side, side), Image.Resampling.BICUBIC))
    canvas[side // 2 : side // 2 + side, side // 2 : side // 2 + side] = face
    boxes = detector.detect(canvas)
    if not boxes:
        continue
    found += 1
    box = boxes[0]
    ratios.append(side / max(box.w, box.h))
    offsets.append(((box.x + box.w / 2 - side) / side, (box.y + box.h / 2 - side) / side))
ratios = np.array(ratios)
offsets = np.array(offsets)
print(f"faces found: {found}/{args.n}")
print(
    f"frame side / box side: median {np.median(ratios):.3f}, IQR {np.percentile(ratios, 25):.3f}-{np.percentile(ratios, 75):.3f}"
)
print(
    f"box centre offset from frame centre (fraction of frame): x {np.median(offsets[:, 0]):+.3f}, y {np.median(offsets[:, 1]):+.3f}"
)
print(f"=> margin per side that reproduces the framing: {(np.median(ratios) - 1) / 2:.3f}")
