"""Where the model looked: saliency maps from pytorch-grad-cam, and how faithful each map is.

    explainer = Explainer.for_classifier(classifier)
    cams = explainer.cams(faces, "Grad-CAM", targets=[0, 2])    # (N, 48, 48) float32 in [0, 1]
    scores = explainer.faithfulness(faces, cams, targets=[0, 2])
    picture = overlay(faces[0], cams[0], opacity=0.5)            # RGB uint8 for display

pytorch-grad-cam registers hooks on the model and runs backward passes, so it is not safe to share
one model between threads: the explainer works on its own copy of the network and holds a lock
around every call. pytorch-grad-cam pulls in matplotlib and takes seconds to import, so it is
imported on first use.
"""

from __future__ import annotations

import copy
import threading

import numpy as np
import torch
from PIL import Image

from fer.config import CLASSES
from fer.metrics import score_text
from fer.model import FerNet, ModelConfig, stage_sizes
from fer.predict import Classifier

# Method name -> pytorch-grad-cam class name. All are computed by the package, none by hand.
METHODS = {
    "Grad-CAM": "GradCAM",
    "Grad-CAM++": "GradCAMPlusPlus",
    "HiRes-CAM": "HiResCAM",
    "XGrad-CAM": "XGradCAM",
    "Layer-CAM": "LayerCAM",
    "Eigen-CAM": "EigenCAM",
    "Score-CAM": "ScoreCAM",
}
DEFAULT_METHOD = "Grad-CAM"
# Methods whose map changes with the class explained (Eigen-CAM ignores the class: one map for all four).
PER_CLASS_METHODS = [method for method in METHODS if method != "Eigen-CAM"]
METHOD_HELP = {
    "Grad-CAM": "Weighs each feature map by the average gradient of the class score: the classic choice.",
    "Grad-CAM++": "Like Grad-CAM with finer gradient weights; better when a class shows up in several places.",
    "HiRes-CAM": "Multiplies activations and gradients pixel by pixel instead of averaging: follows the model more closely.",
    "XGrad-CAM": "Grad-CAM with weights derived from two axioms of faithfulness.",
    "Layer-CAM": "Keeps only positive gradients, pixel by pixel: sharper maps, useful on early layers.",
    "Eigen-CAM": "The main pattern in the feature maps, without gradients: the same for every class.",
    "Score-CAM": "No gradients: masks the face with each feature map and measures the class score (slower).",
}
FAITHFULNESS_PERCENTILES = (20, 40, 60, 80)


def layer_names(config: ModelConfig | None = None) -> list[str]:
    """Human names of the layers a CAM can be taken from (the last block of each stage), the default first."""
    return list(_stage_layers(config or ModelConfig()))


def _stage_layers(config: ModelConfig) -> dict[str, int]:
    # The last stage first: it is Grad-CAM's usual layer.
    return {f"stage {i + 1} ({size}x{size})": i for i, size in reversed(stage_sizes(config).items())}


def layer_module(model: FerNet, name: str) -> torch.nn.Module:
    """The module for one of `layer_names(model.config)`: the last block of that stage."""
    stages = _stage_layers(model.config)
    if name not in stages:
        raise ValueError(f"Unknown layer {name!r}; choose one of {list(stages)}.")
    return model.stages[stages[name]][-1]


_import_lock = threading.Lock()


def grad_cam():
    """The pytorch_grad_cam package, imported on first use (seconds: matplotlib, torchvision).

    Under a lock: two threads importing torchvision at the same time can fail with "partially
    initialized module" (seen when two app sessions asked for their first map together).
    """
    with _import_lock:
        import pytorch_grad_cam  # its __init__ also imports metrics.road and utils.model_targets
        import pytorch_grad_cam.score_cam as score_cam

        # Score-CAM wraps its batches in tqdm.tqdm with no way to turn it off: a progress bar per face in the
        # server's log (and the CLI's). Its module's tqdm is swapped for one that is always disabled.
        if not isinstance(score_cam.tqdm, _SilentTqdm):
            score_cam.tqdm = _SilentTqdm()

    return pytorch_grad_cam


class _SilentTqdm:
    """Stands in for the `tqdm` module inside pytorch_grad_cam.score_cam: its progress bars are disabled."""

    @staticmethod
    def tqdm(*args, **kwargs):
        import tqdm

        return tqdm.tqdm(*args, **{**kwargs, "disable": True})


def _cam_class(method: str):
    if method not in METHODS:
        raise ValueError(f"Unknown CAM method {method!r}; choose one of {list(METHODS)}.")
    return getattr(grad_cam(), METHODS[method])


class Explainer:
    """Saliency maps and faithfulness scores for one network; safe to share between threads."""

    def __init__(self, model: FerNet, temperature: float = 1.0, classifier: Classifier | None = None):
        # A private copy: CAM hooks and gradients never touch the model the classifier predicts with.
        self.model = copy.deepcopy(model).eval()
        # Picks the class to explain when none is given: the class the app shows (served with flip TTA
        # where the weights are), not this float copy's one-view guess, which can differ.
        self.classifier = classifier
        self.layers = layer_names(self.model.config)
        self.default_layer = self.layers[0]
        self.temperature = float(temperature)
        self._lock = threading.Lock()

    @classmethod
    def for_classifier(cls, classifier: Classifier) -> Explainer:
        return cls(classifier.model, classifier.temperature, classifier)

    def cams(self, faces, method: str = DEFAULT_METHOD, targets=None, layer: str | None = None) -> np.ndarray:
        """(N, 48, 48) maps in [0, 1] for faces (N, 48, 48) uint8; targets: class index per face (None: predicted)."""
        cam_class = _cam_class(method)
        class_score = grad_cam().utils.model_targets.ClassifierOutputTarget
        x = Classifier.to_batch(faces)
        if len(x) == 0:
            return np.zeros((0, *x.shape[2:]), dtype=np.float32)
        module = layer_module(self.model, layer or self.default_layer)
        if targets is None and self.classifier is not None:
            targets = self.classifier.predict_proba(np.asarray(faces)).argmax(1).tolist()
        with self._lock:
            if targets is None:
                with torch.no_grad():
                    targets = self.model(x).argmax(1).tolist()
            try:
                with cam_class(model=self.model, target_layers=[module]) as cam:  # releases its hooks on exit
                    cam.batch_size = 256  # Score-CAM: all feature maps of a face in one forward pass
                    maps = cam(input_tensor=x, targets=[class_score(int(t)) for t in targets])
            finally:
                self.model.zero_grad(set_to_none=True)
        return np.clip(np.nan_to_num(maps.astype(np.float32)), 0.0, 1.0)

    def class_maps(self, face, method: str = DEFAULT_METHOD, layer: str | None = None) -> np.ndarray:
        """(4, 48, 48): the map of `method` for each class, in CLASSES order, on one face (48x48 uint8).

        Each map is scaled to its own maximum (pytorch-grad-cam's normalisation), so it shows where a
        class's evidence sits, not how strong it is; an all-zero map means no region speaks for it."""
        face = np.asarray(face)
        if face.ndim != 2:
            raise ValueError(f"class_maps takes one 48x48 face, got an array of shape {face.shape}.")
        return self.cams(np.repeat(face[None], len(CLASSES), axis=0), method, list(range(len(CLASSES))), layer)

    def faithfulness(self, faces, cams: np.ndarray, targets) -> list[dict]:
        """How well each map agrees with the model, per face, as probabilities (0 to 1) of the target class.

        ROAD (Rong et al. 2022; pytorch_grad_cam.metrics.road) removes pixels and fills them in from their
        neighbours, then asks the model again, averaged over removing 20/40/60/80% of the pixels:
        - `drop_most`: confidence lost when the most salient pixels are removed (high is good),
        - `drop_least`: confidence lost when the least salient pixels are removed (low is good),
        - `road`: (drop_most - drop_least) / 2, pytorch-grad-cam's ROADCombined. Higher is more faithful;
          a map that ignores the face scores about 0.
        """
        road = grad_cam().metrics.road

        x = Classifier.to_batch(faces)
        cams = np.asarray(cams, dtype=np.float32)
        percentiles = list(FAITHFULNESS_PERCENTILES)
        scores = []
        with self._lock, torch.random.fork_rng():
            for i, target in enumerate(targets):
                # ROAD's imputer adds noise: seeding per face makes a score depend only on its face and map.
                torch.manual_seed(0)
                target_fn = [_CalibratedProbability(int(target), self.temperature)]
                most = float(
                    road.ROADMostRelevantFirstAverage(percentiles)(
                        x[i : i + 1], cams[i : i + 1], target_fn, self.model
                    )[0]
                )
                least = float(
                    road.ROADLeastRelevantFirstAverage(percentiles)(
                        x[i : i + 1], cams[i : i + 1], target_fn, self.model
                    )[0]
                )
                scores.append({"road": (least - most) / 2, "drop_most": -most, "drop_least": -least})
        return scores


class _CalibratedProbability:
    """A pytorch-grad-cam target: the calibrated class probability (softmax of logits / temperature) of the
    network the maps explain (the float copy, one view; the app's shown numbers come from int8 + mirror)."""

    def __init__(self, category: int, temperature: float):
        self.category, self.temperature = category, temperature

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits / self.temperature, dim=-1)[..., self.category]


# The random baseline. ROAD scores of random maps spread widely, and differently on each face
# (docs/evaluation.md), so one random map is no baseline: RANDOM_MAPS of them are scored on the face, and a
# method must score RANDOM_MARGIN of their standard deviations above their mean. Under a normal approximation
# a map no better than random does that with probability 0.7 %: at most 5 % for the seven methods together
# (Bonferroni). Sixteen maps pin the standard deviation down to about a fifth of itself.
RANDOM_MAPS = 16
RANDOM_MARGIN = 2.45


def random_bar(random_scores) -> float:
    """The score a method must beat on a face: the random maps' mean + RANDOM_MARGIN standard deviations."""
    scores = np.asarray(random_scores, dtype=np.float64)
    return float(scores.mean() + RANDOM_MARGIN * scores.std(ddof=1))


def most_faithful(scores: dict[str, float], bar: float | None = None) -> list[str]:
    """The methods with the highest score as shown (score_text): equal numbers on screen, equal verdict.

    `bar`: the score to beat on this face (`random_bar`); the best methods count only if they beat it as
    shown, else none is most faithful (no map did better than random maps on this face)."""
    shown = {name: float(score_text(score)) for name, score in scores.items()}
    best = max(shown.values(), default=None)
    if best is None or (bar is not None and best <= float(score_text(bar))):
        return []
    return [name for name, value in shown.items() if value == best]


def random_maps(count: int = RANDOM_MAPS, shape=(48, 48)) -> np.ndarray:
    """(count, H, W): the random maps a method is compared with (seeds 0 to count - 1)."""
    return np.stack([random_map(shape, seed) for seed in range(count)])


def random_map(shape=(48, 48), seed: int = 0) -> np.ndarray:
    """A smooth random map in [0, 1]: what a saliency method has to beat to be worth trusting."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((6, 6)).astype(np.float32)
    smooth = np.asarray(Image.fromarray(coarse).resize(shape[::-1], Image.Resampling.BILINEAR), dtype=np.float32)
    return (smooth - smooth.min()) / max(float(smooth.max() - smooth.min()), 1e-7)


def overlay(face: np.ndarray, cam: np.ndarray, opacity: float = 0.5, size: int = 192) -> np.ndarray:
    """The face (48x48 gray) enlarged to `size` with the map as a heat colour on top: RGB uint8.

    pytorch-grad-cam's show_cam_on_image blends them; at opacity 0 the face is shown as it is (that
    function would rescale its brightness), as the model saw it."""
    import cv2

    gray = np.asarray(Image.fromarray(np.asarray(face, dtype=np.uint8)).resize((size, size), Image.Resampling.BICUBIC))
    rgb = np.repeat(gray[..., None], 3, axis=2)
    opacity = float(np.clip(opacity, 0.0, 1.0))
    if opacity == 0:
        return rgb
    mask = np.clip(cv2.resize(np.float32(cam), (size, size), interpolation=cv2.INTER_LINEAR), 0, 1)
    show_cam_on_image = grad_cam().utils.image.show_cam_on_image
    return show_cam_on_image(
        np.float32(rgb) / 255, mask, use_rgb=True, colormap=cv2.COLORMAP_TURBO, image_weight=1 - opacity
    )
