"""Measure where the training faces have their five landmarks (sets fer.faces.FACE_TEMPLATE).

Dataset faces are enlarged 5x and pasted on a flat background; YuNet finds each face and its landmarks,
which are mapped back into the 48x48 frame. The median of each landmark is the template that
`align_face` puts a photo's face onto; the spread and the eye line's tilt say how much the training
faces themselves vary (the training augmentation turns faces by up to 12 degrees).

    python -m benchmarks.face_framing [--data DIR] [--n 600]
"""

import argparse

import numpy as np
from PIL import Image

from fer.data import find_data_dir, load_folder
from fer.faces import FACE_TEMPLATE, LANDMARK_NAMES, FaceDetector

parser = argparse.ArgumentParser()
parser.add_argument("--data")
parser.add_argument("--n", type=int, default=600)
args = parser.parse_args()

faces = load_folder(find_data_dir(args.data), "validation")
detector = FaceDetector()
scale, side, points = 5, 48 * 5, []
for i in np.random.default_rng(0).permutation(len(faces))[: args.n]:
    canvas = np.full((side * 2, side * 2), 128, np.uint8)
    canvas[side // 2 : side // 2 + side, side // 2 : side // 2 + side] = np.asarray(
        Image.fromarray(faces.images[i]).resize((side, side), Image.Resampling.BICUBIC)
    )
    found = detector.detect(canvas)
    if found:
        points.append((np.asarray(found[0].landmarks) - side / 2) / scale)
points = np.array(points)
print(f"faces found: {len(points)}/{args.n}")
print("landmark      median (x, y) in the 48x48 frame   IQR x        IQR y")
for k, name in enumerate(LANDMARK_NAMES):
    q = np.percentile(points[:, k], [25, 75], axis=0)
    median = np.median(points[:, k], axis=0)
    print(
        f"{name:12s}  ({median[0]:5.2f}, {median[1]:5.2f})                  {q[0, 0]:5.1f}-{q[1, 0]:5.1f}  {q[0, 1]:5.1f}-{q[1, 1]:5.1f}"
    )
eyes = points[:, 1] - points[:, 0]
tilt = np.degrees(np.arctan2(eyes[:, 1], eyes[:, 0]))
print(
    f"eye-line tilt: median {np.median(tilt):+.1f} deg, IQR {np.percentile(tilt, 25):+.1f} to {np.percentile(tilt, 75):+.1f}, "
    f"beyond 10 deg: {np.mean(np.abs(tilt) > 10):.0%}"
)
print("shipped template:", FACE_TEMPLATE)
