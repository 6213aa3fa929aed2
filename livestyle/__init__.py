"""livestyle: real-time neural style transfer and super-resolution with perceptual-loss networks."""
from .catalog import Catalog, ModelEntry, choose_model, load_model_file, save_model_file
from .chain import ChainEngine, build_engine
from .engines import create_engine
from .errors import LivestyleError
from .losses import feature_loss, gram_matrix, pixel_loss, style_loss, total_variation_loss
from .models import SRNet, TransformNet, sr_net, transform_net
from .models.lossnets import VGG16Features, loss_network

__all__ = [
    "Catalog", "ChainEngine", "LivestyleError", "ModelEntry", "SRNet", "TransformNet", "VGG16Features",
    "build_engine", "choose_model", "create_engine", "feature_loss", "gram_matrix", "load_model_file",
    "loss_network", "pixel_loss", "save_model_file", "sr_net", "style_loss", "total_variation_loss",
    "transform_net",
]
__version__ = "0.1.0"
