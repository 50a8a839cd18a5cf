"""tinyllama_np: a pure-NumPy, educational reference implementation of LLaMA."""

from .checkpoint import checkpoint_format, load_checkpoint, save_checkpoint
from .generation import KVCache, generate, generate_stream
from .generation import chat_prompt, render_segments
from .gradcheck import gradcheck
from .models import Llama, LlamaConfig, TransformerBlock, default_hidden_dim
from .models import Bert, BertConfig, EncoderDecoder, EncoderDecoderConfig
from .generation import translate
from .nn import CrossAttention, LearnedPositions, SelfAttention
from .nn import (MLP, CrossEntropyLoss, Embedding, LayerNorm, Linear, Module,
                 MultiHeadAttention, RMSNorm, RoPE, ScaledDotProductAttention,
                 SinusoidalPositions, Softmax, SwiGLU, causal_mask, padding_mask,
                 rope_rotations, sinusoidal_encoding)
from .stories import (check_sentence, evaluate_stories, generate_stories, split_stories,
                      write_corpus)
from .tokenizer import BPETokenizer, Llama2cTokenizer, load_tokenizer
from .tokenizer import MergesBPETokenizer

from .nn.lora import LoRALinear
from .training.lora import apply_lora, lora_layers, merge_lora, set_lora_training
from .training.data_parallel import DataParallel
from .checkpoint.adapter import load_adapter, save_adapter
from .nn import CausalAttention

__version__ = "0.1.0"
