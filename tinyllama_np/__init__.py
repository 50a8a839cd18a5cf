"""tinyllama_np: a pure-NumPy, educational reference implementation of LLaMA."""

from .checkpoint import checkpoint_format, load_checkpoint, save_checkpoint
from .generation import KVCache, generate, generate_stream
from .gradcheck import gradcheck
from .models import Llama, LlamaConfig, TransformerBlock, default_hidden_dim
from .nn import (MLP, CrossEntropyLoss, Embedding, LayerNorm, Linear, Module,
                 MultiHeadAttention, RMSNorm, RoPE, ScaledDotProductAttention,
                 SinusoidalPositions, Softmax, SwiGLU, causal_mask, padding_mask,
                 rope_rotations, sinusoidal_encoding)
from .stories import (check_sentence, evaluate_stories, generate_stories, split_stories,
                      write_corpus)
from .tokenizer import BPETokenizer, Llama2cTokenizer, load_tokenizer
from .nn import CausalAttention

__version__ = "0.1.0"
