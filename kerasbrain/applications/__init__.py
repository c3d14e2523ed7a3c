"""3D backbones in the style of ``keras.applications``: one module per family.

Inputs are channels-last volumes ``(x, y, z, channels)`` with one channel by default.
"""

from kerasbrain.applications import sfcn
from kerasbrain.applications.sfcn import SFCN

__all__ = ["SFCN", "sfcn"]
