"""What a published weight set is: its files (`FileSpec`) and everything else (`WeightSpec`)."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """One file of a weight set.

    Attributes:
        filename: name in the cache folder.
        url: where to download it.
        git_blob_sha1: published hash, ``sha1(b"blob %d\\0" % len(data) + data)``.
        sha256: alternative hash where the source publishes no git blob.
        headers: HTTP headers the source needs (e.g. GitHub's raw media type).
        member: for a file published inside an archive (a wheel): its path there; ``url``
            is then the archive's and ``archive_sha256`` its published SHA-256.
        package: the pip requirement whose installed files hold ``member``, e.g.
            ``"deepbet==1.0.2"`` (used when installed; named in offline errors).
    """

    filename: str
    url: str
    git_blob_sha1: str | None = None
    sha256: str | None = None
    headers: tuple = ()
    member: str | None = None
    archive_sha256: str | None = None
    package: str | None = None


@dataclasses.dataclass(frozen=True)
class WeightSpec:
    """A published weight set for one architecture.

    Attributes:
        name: registry name, e.g. ``"ukb"``; ``variant`` distinguishes heads or folds
            (full key ``"brain-age-2022:ranking"``).
        architecture: the kerasbrain constructor family, e.g. ``"sfcn"``.
        files: the files to download (``FileSpec``).
        format: checkpoint format the converter reads (``"peng-torch"``, ``"pyment-h5"``...).
        trained_for: the target, in words and units.
        license, citation, source: provenance, shown wherever the entry is listed.
        training_size: number of scans used for training.
        reported_error: the authors' reported test error.
        preprocessing: how inputs are prepared: `kerasbrain.data.Preprocessor` arguments,
            ``requires`` (what must be done before, in words) and ``name`` (the preset).
        config: constructor settings the weights need (head, classes, filters,
            bn_epsilon, input_shape, bin_range, output_range, pooling, fixed_shape).
        tasks: the heads' tasks as ``kerasbrain.tasks`` configs (``{"type": ..., "name":
            ..., ...}``, one per output, in output order): names and decoding.
    """

    name: str
    architecture: str
    files: tuple
    format: str
    trained_for: str
    license: str
    citation: str
    source: str
    training_size: str
    reported_error: str
    preprocessing: dict
    config: dict
    variant: str = ""
    tasks: tuple = ()

    @property
    def key(self):
        return f"{self.name}:{self.variant}" if self.variant else self.name

    @property
    def verification(self):
        """How downloads are checked: the published hash kind, or a pin on first use."""
        if all(f.git_blob_sha1 for f in self.files):
            return "git blob SHA-1"
        if all(f.sha256 for f in self.files):
            return "SHA-256"
        return "SHA-256 pinned on first download"

    @property
    def input_shape(self):
        return tuple(self.config["input_shape"])
