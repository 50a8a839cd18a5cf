"""Training and scoring both kinds of model on the number task (stories/numbers.py).

    encoder-decoder   source -> encoder;  decoder writes BOS target EOS      (seq2seq_batch)
    decoder-only      one sequence  tag source <sep> target <eos>; loss on the answer only
                      (decoder_only_batch): the "source" is just the start of the text

Both learn from the same numbers in both directions and are scored by exact match on the
held-out numbers: the whole answer must be right, greedy decoding.
"""

import numpy as np

from ..generation import KVCache
from ..generation.seq2seq import translate
from ..models import EncoderDecoder, EncoderDecoderConfig, Llama, LlamaConfig
from ..stories import numbers as task
from .task_loop import train_task

DIRECTION_NAMES = sorted(task.DIRECTIONS)  # "en-zh", "zh-en"
ANSWER_LANGUAGE = {"en-zh": "zh", "zh-en": "en"}
MAX_ANSWER = 12  # tokens: the longest answer has 11 (English) and EOS


def expected_answer(n, direction):
    return task.chinese_numerals(n) if direction == "en-zh" else task.english_words(n)


def random_directions(count, rng):
    return [DIRECTION_NAMES[i] for i in rng.integers(0, 2, size=count)]


def encoder_decoder_config(dim=64, n_heads=4, layers=2, hidden_dim=128, norm_first=False):
    vocab = len(task.VOCABULARY)
    return EncoderDecoderConfig(vocab, vocab, dim, n_heads, layers, layers, hidden_dim,
                                max_seq_len=16, norm_first=norm_first, tie_embeddings=True,
                                share_embeddings=True)


def train_encoder_decoder(train_numbers, settings, config=None, progress=False, log=None):
    """-> (model, losses, seconds)."""
    model = EncoderDecoder(config or encoder_decoder_config(), seed=settings.seed)

    def next_batch(rng):
        numbers = task.sample_numbers(train_numbers, settings.batch_size, rng)
        return task.seq2seq_batch(numbers, random_directions(len(numbers), rng))

    losses, seconds = train_task(model.params, lambda batch: model.loss_and_grads(*batch),
                                 next_batch, settings, progress, log)
    return model, losses, seconds


def encoder_decoder_answers(model, numbers, direction, num_beams=1, batch_size=500):
    answers = []
    for start in range(0, len(numbers), batch_size):
        chunk = numbers[start:start + batch_size]
        source, _, _, source_mask = task.seq2seq_batch(chunk, [direction] * len(chunk))
        ids = translate(model, source, task.BOS_ID, task.EOS_ID, MAX_ANSWER, source_mask,
                        num_beams=num_beams)
        answers += [task.decode(row, ANSWER_LANGUAGE[direction]) for row in ids]
    return answers


def llama_config(dim=64, n_heads=4, n_layers=4, hidden_dim=None):
    return LlamaConfig(len(task.VOCABULARY), dim, n_layers, n_heads, hidden_dim=hidden_dim,
                       max_seq_len=32, tie_embeddings=True)


def train_llama(train_numbers, settings, config=None, progress=False, log=None):
    """-> (model, losses, seconds)."""
    model = Llama(config or llama_config(), seed=settings.seed)

    def next_batch(rng):
        numbers = task.sample_numbers(train_numbers, settings.batch_size, rng)
        return task.decoder_only_batch(numbers, random_directions(len(numbers), rng))

    losses, seconds = train_task(model.params, lambda batch: model.loss_and_grads(*batch),
                                 next_batch, settings, progress, log)
    return model, losses, seconds


def llama_answers(model, numbers, direction):
    """Greedy answers; prompts of equal length share a batch and a KV cache."""
    prompts = [task.example(int(n), direction)[0] + [task.SEP_ID] for n in numbers]
    answers = [None] * len(prompts)
    for length in sorted({len(p) for p in prompts}):
        rows = [i for i, p in enumerate(prompts) if len(p) == length]
        cache = KVCache(model.config, len(rows), model.dtype, max_len=length + MAX_ANSWER)
        logits = model.forward(np.array([prompts[i] for i in rows]), cache=cache)[:, -1]
        outputs = np.zeros((len(rows), MAX_ANSWER), dtype=np.int64)
        for step in range(MAX_ANSWER):
            outputs[:, step] = np.argmax(logits, axis=-1)
            if step < MAX_ANSWER - 1:
                logits = model.forward(outputs[:, step:step + 1], cache=cache)[:, -1]
        for row, ids in zip(rows, outputs.tolist()):
            ids = ids[:ids.index(task.EOS_ID)] if task.EOS_ID in ids else ids
            answers[row] = task.decode(ids, ANSWER_LANGUAGE[direction])
    return answers


def exact_match(answer_fn, model, numbers):
    """{direction: share of held-out numbers answered exactly right}, and the first misses."""
    scores, misses = {}, []
    for direction in DIRECTION_NAMES:
        answers = answer_fn(model, numbers, direction)
        right = [a == expected_answer(int(n), direction) for n, a in zip(numbers, answers)]
        scores[direction] = float(np.mean(right))
        misses += [(direction, int(n), a) for n, a, ok in zip(numbers, answers, right) if not ok][:5]
    return scores, misses
