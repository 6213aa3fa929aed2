"""Provenance of what models learn from: the paper's style images and the training photo sets here
(credit and licence, from ../shared/data/MANIFEST.md), written into every trained model's entry."""
from __future__ import annotations

from pathlib import Path

# Credit and licence of the paper's style images and of the training sets here (../shared/data/MANIFEST.md).
KNOWN_STYLES = {
    "composition_vii": "Wassily Kandinsky, Composition VII (1913)",
    "starry_night": "Vincent van Gogh, The Starry Night (1889)",
    "starry_night_crop": "Vincent van Gogh, The Starry Night (1889), crop",
    "the_scream": "Edvard Munch, The Scream (1893)",
    "wave": "Katsushika Hokusai, The Great Wave off Kanagawa (c. 1831)",
    "wave_crop": "Katsushika Hokusai, The Great Wave off Kanagawa (c. 1831), crop",
}
STYLE_IMAGE_LICENCE = "painting in the public domain; image file from jcjohnson/fast-neural-style (images/styles/)"
KNOWN_DATASETS = {
    "caltech101": "Caltech-101 (Fei-Fei, Fergus, Perona 2004), subset; research use",
    "bsds500": "BSDS500 train+test photos (Berkeley, Corel images); research use",
}


def dataset_note(dataset: str) -> str:
    """Credit and licence note of a training photo set, known by its folder name."""
    name = Path(dataset).name.lower()
    for key, note in KNOWN_DATASETS.items():
        if key in name:
            return note
    return "user-supplied photos (licence not recorded)"


def style_credit(style_image: str) -> str:
    """Artist, title and year of a known style image, else its file name."""
    return KNOWN_STYLES.get(Path(style_image).stem, f"style image {Path(style_image).name}")
