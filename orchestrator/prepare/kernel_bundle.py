"""Built kernels carried to other machines: `forkdiff kernel export FILE` packs the cache
entries (cache/kernels/<key>/: bzImage, config, manifest.json, build.log) of the run's kernels
into one tar.gz; `forkdiff kernel import FILE` unpacks them into another cache, each bzImage
checked against its manifest's SHA-256, so shards and Dask workers reuse one build instead of
building again. An entry is found again only where its key is computed the same: the same
tree, patches, kconfig fragments and gcc (the same CI image)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from ..cache import atomic_write, cache_path, locked, sha256_file
from ..errors import ForkdiffError
from .kernel import BuiltKernel

FILES = ("bzImage", "config", "manifest.json", "build.log")


def export(kernels: list[BuiltKernel], dest: Path) -> list[str]:
    """Write the kernels' cache entries to dest (tar.gz); returns their keys."""
    keys = []
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for k in kernels:
            key = k.bzimage.parent.name
            for name in FILES:
                path = k.bzimage.parent / name
                if path.is_file():
                    tar.add(path, arcname=f"kernels/{key}/{name}", recursive=False)
            keys.append(key)
    atomic_write(Path(dest), buf.getvalue())
    return keys


def _member(tar: tarfile.TarFile, name: str) -> bytes | None:
    try:
        fh = tar.extractfile(name)
    except KeyError:
        return None
    return fh.read() if fh is not None else None


def import_bundle(src: Path) -> list[tuple[str, str]]:
    """Unpack a bundle into this cache: [(key, 'imported' | 'present')]. A bzImage whose hash
    is not its manifest's, or a member outside kernels/<key>/, is refused."""
    try:
        tar = tarfile.open(src, mode="r:gz")
    except (OSError, tarfile.TarError) as err:
        raise ForkdiffError(f"{src} is not a kernel bundle ({err})",
                            "give a file written by 'forkdiff kernel export'") from None
    out = []
    with tar:
        keys = []
        for m in tar.getmembers():
            parts = m.name.split("/")
            if len(parts) != 3 or parts[0] != "kernels" or parts[2] not in FILES or not m.isfile() \
                    or not parts[1].isalnum():
                raise ForkdiffError(f"{src}: unexpected member {m.name!r}",
                                    "give a file written by 'forkdiff kernel export'")
            if parts[1] not in keys:
                keys.append(parts[1])
        for key in keys:
            manifest_raw = _member(tar, f"kernels/{key}/manifest.json")
            image = _member(tar, f"kernels/{key}/bzImage")
            if manifest_raw is None or image is None:
                raise ForkdiffError(f"{src}: kernel {key} lacks its bzImage or manifest",
                                    "export it again")
            manifest = json.loads(manifest_raw)
            if hashlib.sha256(image).hexdigest() != manifest.get("bzimage", {}).get("sha256"):
                raise ForkdiffError(f"{src}: kernel {key}'s bzImage does not match its manifest",
                                    "the bundle is damaged: export it again")
            folder = cache_path("kernels", key)
            with locked(f"kernel-{key}"):
                current = folder / "bzImage"
                if current.is_file() and sha256_file(current) == manifest["bzimage"]["sha256"]:
                    out.append((key, "present"))
                    continue
                for name in FILES:
                    data = _member(tar, f"kernels/{key}/{name}")
                    if data is not None and name != "manifest.json":
                        atomic_write(folder / name, data)
                atomic_write(folder / "manifest.json", manifest_raw)  # last: it marks the entry done
                out.append((key, "imported"))
    return out
