"""Models built from the components in `nn/`: the LLaMA decoder, the 2017 encoder-decoder, BERT."""

from .llama import Llama, LlamaConfig, TransformerBlock, default_hidden_dim
from .encoder_decoder import EncoderDecoder, EncoderDecoderConfig
from .bert import Bert, BertConfig
