"""The plug-in interface's original path for :class:`Preprocessing`; it lives in :mod:`subclassbench.encoders`."""

from subclassbench.encoders.preprocessing import Preprocessing

__all__ = ["Preprocessing"]
