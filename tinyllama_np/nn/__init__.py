"""The Transformer components, each a module with forward and a hand-written backward."""

from .attention import CausalAttention, MultiHeadAttention, ScaledDotProductAttention, repeat_kv
from .cross_attention import CrossAttention, SelfAttention
from .feedforward import MLP, SwiGLU
from .linear import Embedding, Linear
from .loss import IGNORE_INDEX, CrossEntropyLoss
from .lora import LoRALinear
from .mask import apply_mask, causal_mask, padding_mask
from .module import Module
from .norm import LayerNorm, RMSNorm
from .position import LearnedPositions, RoPE, SinusoidalPositions, rope_rotations, sinusoidal_encoding
from .softmax import Softmax
