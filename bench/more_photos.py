"""A folder of photos with clear licences for `gbp evaluate`'s README result: the sample photos and
five more that installed packages carry (scikit-image's and scikit-learn's sample data).

    python bench/more_photos.py DIR && gbp evaluate DIR --model efficientnet_lite0

Writes DIR/LICENSES.md beside them, naming each photo's source and licence.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MORE = {  # file: (package, what, licence)
    "camera.png": ("skimage", "a photographer, camera on a tripod (grey)", "CC0, Lav Varshney"),
    "clock_motion.png": ("skimage", "a wall clock, motion-blurred (grey)", "public domain"),
    "coins.png": ("skimage", "Greek coins (grey)", "no known copyright restrictions"),
    "china.jpg": ("sklearn", "a temple in China", "CC BY 2.0, danielbuechele on Flickr"),
    "flower.jpg": ("sklearn", "a flower", "CC BY 2.0, vultilion on Flickr"),
}


def folder_of(package: str) -> Path:
    """Where an installed package keeps its sample photos."""
    if package == "skimage":
        import skimage.data

        return Path(skimage.data.__file__).parent
    import sklearn.datasets

    return Path(sklearn.datasets.__file__).parent / "images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    folder = parser.parse_args().folder
    folder.mkdir(parents=True, exist_ok=True)
    for photo in (ROOT / "sample_images").iterdir():
        if photo.name != "LICENSES.md":
            shutil.copyfile(photo, folder / photo.name)
    lines = (ROOT / "sample_images" / "LICENSES.md").read_text().rstrip("\n").splitlines()
    for name, (package, what, licence) in MORE.items():
        shutil.copyfile(folder_of(package) / name, folder / name)
        source = "scikit-image" if package == "skimage" else "scikit-learn"
        lines.append(f"| {name} | {what} | {source} sample data | {licence} |")
    (folder / "LICENSES.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
