"""livestyle: real-time neural style transfer and super-resolution with perceptual-loss networks."""
from .catalog import Catalog, ModelEntry, choose_model, load_model_file, save_model_file
from .errors import LivestyleError
from .losses import feature_loss, gram_matrix, pixel_loss, style_loss, total_variation_loss
from .models import SRNet, TransformNet, sr_net, transform_net

__all__ = [
    "Catalog", "LivestyleError", "ModelEntry", "SRNet", "TransformNet", "choose_model", "feature_loss",
    "gram_matrix", "load_model_file", "pixel_loss", "save_model_file", "sr_net", "style_loss",
    "total_variation_loss", "transform_net",
]
__version__ = "0.1.0"
