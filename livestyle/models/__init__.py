"""Pure PyTorch networks: no files, threads or CLI here."""
from .superres import SRNet, SRNetConfig, sr_net
from .transform import TransformNet, TransformNetConfig, transform_net

__all__ = ["SRNet", "SRNetConfig", "TransformNet", "TransformNetConfig", "sr_net", "transform_net"]
