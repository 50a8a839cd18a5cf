"""Models built from the components in `nn/`: today the LLaMA decoder."""

from .llama import Llama, LlamaConfig, TransformerBlock, default_hidden_dim
