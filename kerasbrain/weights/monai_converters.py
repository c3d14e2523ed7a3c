"""MONAI / MedicalNet PyTorch state dicts -> kerasbrain DenseNet and ResNet layers.

Each converter returns ``{keras_layer_name: [(source_tensor_name, array), ...]}`` with the
arrays in Keras layout and ``layer.get_weights()`` order (see ``loading.assign``).
Conv3d weights ``(out, in, x, y, z)`` become kernels ``(x, y, z, in, out)``; Linear
weights ``(out, in)`` become Dense kernels ``(in, out)``; BatchNorm3d gives
``(gamma, beta, moving_mean, moving_variance)``. The volume axes are the same in both.

- MONAI ``DenseNet121/169/201(spatial_dims=3)`` (SynthBA): layer names in
  ``kerasbrain.applications.densenet``'s docstring (newer MONAI versions nest each dense
  layer's tensors under ``.layers.``; both spellings are read).
- MedicalNet / MONAI ``ResNet`` (``conv1``, ``bn1``, ``layer{i}.{j}.conv{k}``,
  ``downsample.{0,1}``, ``fc``): layer names in ``kerasbrain.applications.resnet``'s
  docstring. MedicalNet's segmentation head (``conv_seg.*``) has no counterpart in a
  classification backbone and is skipped.
"""

import collections
import re

import numpy as np

_BN = ("weight", "bias", "running_mean", "running_var")
#: DenseNet dense layers per block -> depth
DENSENET_DEPTHS = {(6, 12, 24, 16): 121, (6, 12, 32, 32): 169, (6, 12, 48, 32): 201}
#: ResNet (bottleneck?, blocks per layer) -> depth
RESNET_DEPTHS = {
    (False, (1, 1, 1, 1)): 10,
    (False, (2, 2, 2, 2)): 18,
    (False, (3, 4, 6, 3)): 34,
    (True, (3, 4, 6, 3)): 50,
    (True, (3, 4, 23, 3)): 101,
    (True, (3, 8, 36, 3)): 152,
    (True, (3, 24, 36, 3)): 200,
}


class _Taker:
    """Pops tensors by name from a state dict and converts them to Keras layout."""

    def __init__(self, state, source):
        self.state = state
        self.source = source
        self.used = set()

    def _get(self, name):
        if name not in self.state:
            raise ValueError(f"{self.source}: tensor {name!r} is missing.")
        self.used.add(name)
        return np.asarray(self.state[name], dtype="float32")

    def conv(self, prefix, bias=False):
        weight = self._get(f"{prefix}.weight")
        if weight.ndim != 5:
            raise ValueError(
                f"{self.source}: tensor '{prefix}.weight' has shape {weight.shape}; a Conv3d "
                "weight needs 5 dimensions (out, in, x, y, z)."
            )
        out = [(f"{prefix}.weight", np.transpose(weight, (2, 3, 4, 1, 0)))]
        if bias:
            out.append((f"{prefix}.bias", self._get(f"{prefix}.bias")))
        return out

    def bn(self, prefix):
        out = [(f"{prefix}.{n}", self._get(f"{prefix}.{n}")) for n in _BN]
        if f"{prefix}.num_batches_tracked" in self.state:
            self.used.add(f"{prefix}.num_batches_tracked")
        return out

    def linear(self, prefix):
        weight = self._get(f"{prefix}.weight")
        return [(f"{prefix}.weight", weight.T), (f"{prefix}.bias", self._get(f"{prefix}.bias"))]

    def check_all_used(self, ignore=()):
        extra = [k for k in self.state if k not in self.used and not k.startswith(ignore)]
        if extra:
            shown = ", ".join(extra[:8]) + (" ..." if len(extra) > 8 else "")
            raise ValueError(f"{self.source}: unexpected tensors: {shown}.")


def densenet_blocks(state):
    """Dense layers per block ``(n1, n2, n3, n4)`` of a MONAI DenseNet state dict."""
    counts = collections.Counter()
    for key in state:
        match = re.match(r"features\.denseblock(\d+)\.denselayer(\d+)\.", key)
        if match:
            block, layer = int(match.group(1)), int(match.group(2))
            counts[block] = max(counts[block], layer)
    return tuple(counts[i] for i in sorted(counts))


def from_monai_densenet(state, source="checkpoint", blocks=None):
    """Convert a MONAI 3D DenseNet state dict (``module.`` prefix already stripped).

    Args:
        state: mapping name -> array.
        source: file name for error messages.
        blocks: the dense layers per block the target model has; a state dict of another
            depth raises a ``ValueError`` naming both.
    """
    found = densenet_blocks(state)
    if len(found) != 4:
        raise ValueError(
            f"{source}: not a MONAI DenseNet state dict (dense blocks found: {found}; "
            "expected keys features.denseblock<i>.denselayer<j>.*)."
        )
    if blocks is not None and tuple(blocks) != found:
        raise ValueError(
            f"{source}: this is a DenseNet{DENSENET_DEPTHS.get(found, '')} state dict "
            f"(dense blocks {found}); the model is DenseNet"
            f"{DENSENET_DEPTHS.get(tuple(blocks), '')} (dense blocks {tuple(blocks)})."
        )
    take = _Taker(state, source)
    out = collections.OrderedDict()
    out["conv1_conv"] = take.conv("features.conv0")
    out["conv1_bn"] = take.bn("features.norm0")
    for i, n_layers in enumerate(found, start=1):
        for j in range(1, n_layers + 1):
            torch_name = f"features.denseblock{i}.denselayer{j}"
            if f"{torch_name}.layers.norm1.weight" in state:  # MONAI >= 0.9 nests them
                torch_name += ".layers"
            keras_name = f"conv{i + 1}_block{j}"
            out[f"{keras_name}_0_bn"] = take.bn(f"{torch_name}.norm1")
            out[f"{keras_name}_1_conv"] = take.conv(f"{torch_name}.conv1")
            out[f"{keras_name}_1_bn"] = take.bn(f"{torch_name}.norm2")
            out[f"{keras_name}_2_conv"] = take.conv(f"{torch_name}.conv2")
        if i < 4:
            out[f"pool{i + 1}_bn"] = take.bn(f"features.transition{i}.norm")
            out[f"pool{i + 1}_conv"] = take.conv(f"features.transition{i}.conv")
    out["bn"] = take.bn("features.norm5")
    if "class_layers.out.weight" in state:
        out["predictions"] = take.linear("class_layers.out")
    take.check_all_used()
    return out


def resnet_layout(state):
    """``(depth, bottleneck, blocks per layer)`` of a MedicalNet/MONAI ResNet state dict."""
    blocks = collections.Counter()
    bottleneck = False
    for key in state:
        match = re.match(r"layer(\d)\.(\d+)\.(conv\d)", key)
        if match:
            layer, block = int(match.group(1)), int(match.group(2))
            blocks[layer] = max(blocks[layer], block + 1)
            bottleneck |= match.group(3) == "conv3"
    layout = (bottleneck, tuple(blocks[i] for i in range(1, 5)))
    return RESNET_DEPTHS.get(layout), bottleneck, layout[1]


def from_medicalnet(state, source="checkpoint", depth=None):
    """Convert a MedicalNet or MONAI 3D ResNet state dict (``module.`` already stripped).

    Args:
        state: mapping name -> array.
        source: file name for error messages.
        depth: the target model's depth; a state dict of another depth raises a
            ``ValueError`` naming both.
    """
    found, bottleneck, blocks = resnet_layout(state)
    if found is None:
        raise ValueError(
            f"{source}: not a MedicalNet/MONAI ResNet state dict (blocks per layer {blocks}, "
            f"bottleneck={bottleneck})."
        )
    if depth is not None and depth != found:
        raise ValueError(f"{source}: this is a ResNet{found} state dict; the model is ResNet{depth}.")
    take = _Taker(state, source)
    out = collections.OrderedDict()
    out["conv1_conv"] = take.conv("conv1")
    out["conv1_bn"] = take.bn("bn1")
    convs = (1, 2, 3) if bottleneck else (1, 2)
    for i, n_blocks in enumerate(blocks, start=1):
        for j in range(n_blocks):
            torch_name, keras_name = f"layer{i}.{j}", f"conv{i + 1}_block{j + 1}"
            if f"{torch_name}.downsample.0.weight" in state:
                out[f"{keras_name}_0_conv"] = take.conv(f"{torch_name}.downsample.0")
                out[f"{keras_name}_0_bn"] = take.bn(f"{torch_name}.downsample.1")
            for k in convs:
                out[f"{keras_name}_{k}_conv"] = take.conv(f"{torch_name}.conv{k}")
                out[f"{keras_name}_{k}_bn"] = take.bn(f"{torch_name}.bn{k}")
    if "fc.weight" in state:
        out["predictions"] = take.linear("fc")
    take.check_all_used(ignore=("conv_seg.",))
    return out
