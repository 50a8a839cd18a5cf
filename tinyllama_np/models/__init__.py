"""Models built from the components in `nn/`: the LLaMA decoder and the 2017 encoder-decoder."""

from .llama import Llama, LlamaConfig, TransformerBlock, default_hidden_dim
from .encoder_decoder import EncoderDecoder, EncoderDecoderConfig
