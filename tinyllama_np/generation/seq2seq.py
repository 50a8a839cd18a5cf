"""Generation for the encoder-decoder: greedy and beam search, with the work done once.

A translation reads its source once and writes its target one token at a time. Three
things therefore need computing only once, not at every step:

    the encoder's output (the memory)                  encode(source), once per source
    each decoder layer's cross-attention keys/values   of the memory, once per source
    the decoder's self-attention keys/values           a KV cache, as for LLaMA (kv_cache.py)

Each step then runs only the decoder, on the one new token. use_cache=False re-runs the
whole model (encoder included) on the whole target at every step, to compare: the outputs
are the same, only the work differs.

The search itself is the one LLaMA uses (beam_search.py); `Seq2SeqDecoder` gives it the
same start()/step() interface as generate.Decoder.
"""

import numbers

import numpy as np

from .beam_search import beam_search


class DecoderCache:
    """Per decoder layer, self-attention keys and values (batch, n_heads, max_len, head_dim)."""

    def __init__(self, config, batch_size, dtype, max_len):
        shape = (batch_size, config.n_heads, max_len, config.head_dim)
        self.keys = [np.zeros(shape, dtype) for _ in range(config.n_decoder_layers)]
        self.values = [np.zeros(shape, dtype) for _ in range(config.n_decoder_layers)]
        self.length = 0  # positions 0..length-1 are filled

    def layer(self, index):
        return self.keys[index], self.values[index]

    def reorder(self, rows):
        """Row i becomes old row rows[i] (beam search: a beam continues its parent)."""
        self.keys = [k[rows] for k in self.keys]
        self.values = [v[rows] for v in self.values]


class Seq2SeqDecoder:
    """Next-token logits for targets being written for one source row each.

        start()                 logits (rows, tgt_vocab) after BOS
        step(tokens, parents)   target i becomes old target parents[i] + tokens[i]
    `sequences` holds every target so far, BOS included.
    """

    def __init__(self, model, source, source_mask, bos_id, max_new_tokens, use_cache=True):
        self.model, self.use_cache = model, use_cache
        self.source, self.source_mask = np.asarray(source), source_mask
        self.sequences = np.full((len(self.source), 1), bos_id, dtype=np.int64)
        if use_cache:
            memory = model.encode(self.source, source_mask)  # once
            self.memory_kv = model.cross_keys_values(memory)  # once
            self.cache = DecoderCache(model.config, len(self.source), model.dtype, 1 + max_new_tokens)

    def logits(self, new_tokens):
        if not self.use_cache:
            return self.model.forward(self.source, self.sequences, self.source_mask)[:, -1]
        return self.model.decode(new_tokens, None, self.source_mask, self.cache, self.memory_kv)[:, -1]

    def start(self):
        return self.logits(self.sequences)

    def step(self, tokens, parents=None):
        tokens = np.asarray(tokens, dtype=np.int64).reshape(-1, 1)
        if parents is not None:
            parents = np.asarray(parents)
            self.sequences, self.source = self.sequences[parents], self.source[parents]
            if self.source_mask is not None:
                self.source_mask = self.source_mask[parents]
            if self.use_cache:
                self.cache.reorder(parents)
                self.memory_kv = [(k[parents], v[parents]) for k, v in self.memory_kv]
        self.sequences = np.concatenate([self.sequences, tokens], axis=1)
        return self.logits(tokens)


def check_translate_arguments(model, bos_id, eos_id, max_new_tokens, num_beams):
    config = model.config
    for name, value in (("bos_id", bos_id), ("eos_id", eos_id)):
        if (not isinstance(value, numbers.Integral) or isinstance(value, bool)
                or not 0 <= value < config.tgt_vocab_size):
            raise ValueError(f"{name} must be a target token id in [0, {config.tgt_vocab_size}), "
                             f"got {value!r}")
    if not isinstance(max_new_tokens, numbers.Integral) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    if 1 + max_new_tokens > config.max_seq_len:
        raise ValueError(f"BOS plus max_new_tokens ({max_new_tokens}) exceed max_seq_len="
                         f"{config.max_seq_len}")
    if not isinstance(num_beams, numbers.Integral) or num_beams < 1:
        raise ValueError(f"num_beams must be an integer >= 1, got {num_beams!r}")


def translate(model, source, bos_id, eos_id, max_new_tokens, source_mask=None, num_beams=1,
              use_cache=True):
    """Targets for a batch of sources: a list, per row, of the new ids without BOS and EOS.

    num_beams=1 is greedy search over the whole batch at once; num_beams > 1 runs beam
    search (beam_search.py, mean log-probability per token) for each row in turn.
    """
    check_translate_arguments(model, bos_id, eos_id, max_new_tokens, num_beams)
    source, source_mask = model.check_source(source, source_mask)
    if num_beams > 1:
        results = []
        for row in range(len(source)):
            mask = None if source_mask is None else source_mask[row:row + 1]
            decoder = Seq2SeqDecoder(model, source[row:row + 1], mask, bos_id, max_new_tokens, use_cache)
            ids = beam_search(decoder, max_new_tokens, num_beams, eos_id)
            results.append(ids[:-1] if ids and ids[-1] == eos_id else ids)
        return results

    decoder = Seq2SeqDecoder(model, source, source_mask, bos_id, max_new_tokens, use_cache)
    logits = decoder.start()
    finished = np.zeros(len(source), dtype=bool)
    outputs = [[] for _ in range(len(source))]
    for step in range(max_new_tokens):
        tokens = np.argmax(logits, axis=-1)
        for row in np.flatnonzero(~finished):
            if tokens[row] == eos_id:
                finished[row] = True
            else:
                outputs[row].append(int(tokens[row]))
        if finished.all() or step == max_new_tokens - 1:
            break
        logits = decoder.step(np.where(finished, eos_id, tokens))  # finished rows idle on EOS
    return outputs
