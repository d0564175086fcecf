"""Why Top-K gives shape bias, as tools: texture synthesis with Top-K ablation,
reconstruction from Top-K / non-Top-K responses, and Top-K mask maps
(paper Figs. 2, 3, 8, 9), on any backbone and image, each optimisation run until
its loss stops improving, and the claim they illustrate measured over many images
(``run_claim``).

>>> from topk_plugin.analysis import texture_synthesis
>>> result = texture_synthesis("cat.png", "squeezenet1_1", weights="squeezenet1_1.pth", size=128,
...                            max_evals=300)  # at most 300 evaluations; it stops earlier on convergence
>>> result.save("out")   # grid PNG (target, then each condition) and JSON with the scores
"""
from .backbones import BackboneError, load_backbone
from .claim import ClaimConfig, ClaimImage, claim_images, run_claim
from .claim_report import summarize, write_report
from .common import SCORE_DOC, AnalysisResult
from .features import DEFAULT_LAYERS, FeatureExtractor, default_layers
from .images import load_image, save_grid
from .masks import MaskResult, topk_masks
from .reconstruct import RECONSTRUCT_CONDITIONS, reconstruct
from .scores import color_histogram_distance, edge_correlation, gram_distance, gram_matrix, image_scores, ssim
from .texture import TEXTURE_CONDITIONS, texture_synthesis

__all__ = [
    "texture_synthesis",
    "reconstruct",
    "topk_masks",
    "claim_images",
    "run_claim",
    "ClaimConfig",
    "ClaimImage",
    "summarize",
    "write_report",
    "AnalysisResult",
    "MaskResult",
    "TEXTURE_CONDITIONS",
    "RECONSTRUCT_CONDITIONS",
    "FeatureExtractor",
    "default_layers",
    "DEFAULT_LAYERS",
    "load_backbone",
    "BackboneError",
    "load_image",
    "save_grid",
    "gram_matrix",
    "ssim",
    "edge_correlation",
    "gram_distance",
    "color_histogram_distance",
    "image_scores",
    "SCORE_DOC",
]
