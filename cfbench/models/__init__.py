"""CodeFormer and its VQGAN, with the official state_dict layout; registered variants; checkpoint I/O."""

from cfbench.models.checkpoint import load_checkpoint, save_checkpoint
from cfbench.models.codeformer import CodeFormer, CodeFormerState
from cfbench.models.config import CodeFormerConfig, DiscriminatorConfig, VQGANConfig
from cfbench.models.discriminator import VQGANDiscriminator
from cfbench.models.registry import MODEL_VARIANTS, build_model, instantiate
from cfbench.models.vqgan import VQAutoEncoder
from cfbench.state_dict import load_state_dict_file

__all__ = [
    "MODEL_VARIANTS",
    "CodeFormer",
    "CodeFormerConfig",
    "CodeFormerState",
    "DiscriminatorConfig",
    "VQAutoEncoder",
    "VQGANConfig",
    "VQGANDiscriminator",
    "build_model",
    "instantiate",
    "load_checkpoint",
    "load_state_dict_file",
    "save_checkpoint",
]
