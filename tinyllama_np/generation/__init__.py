"""Generation: the KV cache, the sampling strategies, beam search, and the loop that uses them."""

from .generate import Decoder, generate, generate_stream
from .kv_cache import KVCache
from .chat import chat_prompt, render_segments
from .seq2seq import DecoderCache, Seq2SeqDecoder, translate
