"""The number task: English number words <-> Chinese numerals, 0 to 99,999.

    342     "three hundred and forty-two"          <->  三百四十二
    10005   "ten thousand and five"                <->  一万零五
    20310   "twenty thousand three hundred and ten" <-> 二万零三百一十

A small translation task with real structure, generated here, so every answer can be
checked exactly. The two languages group digits differently (English by thousands, Chinese
by 万 = ten thousand), Chinese writes one 零 for any run of inner zeros and English an
"and" before the last two digits: a model must learn to align the two, which is what
cross-attention (seed 3.1.2) is for. Numbers are held out, so the score measures whether
the rules were learnt rather than the pairs remembered.

It lives next to the stories because it is the same kind of thing: a generated corpus with
its own small grammars (one per language) and an exact evaluator. Training is in
training/seq2seq.py; the vocabulary here is one list of words and characters shared by
both directions.
"""

import numpy as np

LARGEST = 99_999

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
        "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
CHINESE_DIGITS = "零一二三四五六七八九"
CHINESE_UNITS = [(10_000, "万"), (1000, "千"), (100, "百"), (10, "十"), (1, "")]

PAD, BOS, EOS, SEP = "<pad>", "<bos>", "<eos>", "<sep>"  # SEP: decoder-only prompts
TO_CHINESE, TO_ENGLISH = "<to-zh>", "<to-en>"
SPECIALS = [PAD, BOS, EOS, SEP, TO_CHINESE, TO_ENGLISH]
VOCABULARY = (SPECIALS + ONES + TENS[2:] + ["hundred", "thousand", "and", "-"]
              + list(CHINESE_DIGITS) + [unit for _, unit in CHINESE_UNITS if unit])
TOKEN_ID = {token: index for index, token in enumerate(VOCABULARY)}
PAD_ID, BOS_ID, EOS_ID, SEP_ID = TOKEN_ID[PAD], TOKEN_ID[BOS], TOKEN_ID[EOS], TOKEN_ID[SEP]
DIRECTIONS = {"en-zh": TO_CHINESE, "zh-en": TO_ENGLISH}


def check_number(n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n <= LARGEST:
        raise ValueError(f"the number task covers the integers 0..{LARGEST}, got {n!r}")


def below_hundred(n):
    if n < 20:
        return ONES[n]
    return TENS[n // 10] + ("-" + ONES[n % 10] if n % 10 else "")


def english_words(n):
    """British usage: "and" before the tens and units when something comes before them."""
    check_number(n)
    if n == 0:
        return "zero"
    thousands, rest = divmod(n, 1000)
    hundreds, last_two = divmod(rest, 100)
    parts = []
    if thousands:
        parts.append(below_hundred(thousands) + " thousand")
    if hundreds:
        parts.append(ONES[hundreds] + " hundred")
    if last_two:
        parts.append(("and " if parts else "") + below_hundred(last_two))
    return " ".join(parts)


def chinese_numerals(n):
    """Digits with their units, one 零 for each run of inner zeros, no trailing zeros;
    10..19 drop the leading 一 (十五, but 一百一十五)."""
    check_number(n)
    if n == 0:
        return CHINESE_DIGITS[0]
    text, zero_pending = "", False
    for value, unit in CHINESE_UNITS:
        digit = n // value % 10
        if digit == 0:
            zero_pending = zero_pending or bool(text)
            continue
        if zero_pending:
            text += CHINESE_DIGITS[0]
            zero_pending = False
        text += CHINESE_DIGITS[digit] + unit
    return text[1:] if 10 <= n <= 19 else text


def english_tokens(text):
    """Words, with the hyphen of "forty-two" as a token of its own."""
    return text.replace("-", " - ").split()


def chinese_tokens(text):
    return list(text)


def encode(tokens):
    unknown = [t for t in tokens if t not in TOKEN_ID]
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not in the number task's vocabulary")
    return [TOKEN_ID[t] for t in tokens]


def decode(ids, language):
    """Token ids -> text; English words are joined by spaces (hyphens without)."""
    tokens = [VOCABULARY[i] for i in ids if VOCABULARY[i] not in SPECIALS]
    if language == "zh":
        return "".join(tokens)
    return " ".join(tokens).replace(" - ", "-")


def example(n, direction):
    """(source ids, target ids) for one number; the source starts with the direction tag."""
    english, chinese = english_tokens(english_words(n)), chinese_tokens(chinese_numerals(n))
    if direction == "en-zh":
        source, target = english, chinese
    elif direction == "zh-en":
        source, target = chinese, english
    else:
        raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, got {direction!r}")
    return encode([DIRECTIONS[direction]] + source), encode(target)


def split_numbers(seed=0, held_out=2000):
    """(training numbers, held-out numbers): `held_out` numbers drawn at random from 0..99,999
    are never trained on, in either direction."""
    if not 0 < held_out < LARGEST:
        raise ValueError(f"held_out must lie in (0, {LARGEST}), got {held_out}")
    order = np.random.default_rng(seed).permutation(LARGEST + 1)
    return np.sort(order[held_out:]), np.sort(order[:held_out])


def sample_numbers(numbers, count, rng):
    """`count` numbers from `numbers`, each digit count (1..5) equally likely, so small
    numbers, only 1% of the range, are seen as often as large ones."""
    numbers = np.sort(np.asarray(numbers))
    # Numbers with d digits form one contiguous run of the sorted array.
    bounds = np.searchsorted(numbers, [0, 10, 100, 1000, 10_000, LARGEST + 1])
    runs = [(start, stop) for start, stop in zip(bounds[:-1], bounds[1:]) if stop > start]
    chosen = rng.integers(0, len(runs), size=count)
    starts = np.array([runs[i][0] for i in chosen])
    sizes = np.array([runs[i][1] - runs[i][0] for i in chosen])
    return numbers[starts + (rng.random(count) * sizes).astype(np.int64)]


def pad(sequences, value=PAD_ID):
    """Right-pad lists of ids into an int array (rows, longest)."""
    longest = max(len(s) for s in sequences)
    array = np.full((len(sequences), longest), value, dtype=np.int64)
    for row, sequence in enumerate(sequences):
        array[row, :len(sequence)] = sequence
    return array


def real_positions(sequences):
    """(rows, longest) bool: True at the real tokens of right-padded sequences."""
    lengths = np.array([len(s) for s in sequences])
    return np.arange(lengths.max())[None, :] < lengths[:, None]


def seq2seq_batch(numbers, directions):
    """Arrays for an encoder-decoder, in the order of EncoderDecoder.loss_and_grads: source,
    target_in (BOS + target), target_out (target + EOS, -1 at padding), source_mask."""
    pairs = [example(int(n), d) for n, d in zip(numbers, directions)]
    sources = [s for s, _ in pairs]
    target_in = pad([[BOS_ID] + t for _, t in pairs])
    target_out = pad([t + [EOS_ID] for _, t in pairs], value=-1)
    return pad(sources), target_in, target_out, real_positions(sources)


def decoder_only_batch(numbers, directions):
    """Arrays for a decoder-only model: one sequence  tag source <sep> target <eos>  per row.

    tokens = sequence[:-1], targets = sequence[1:] with -1 wherever the next token is still
    part of the prompt (or padding): the loss is on the answer only.
    """
    tokens, targets = [], []
    for n, direction in zip(numbers, directions):
        source, target = example(int(n), direction)
        sequence = source + [SEP_ID] + target + [EOS_ID]
        tokens.append(sequence[:-1])
        targets.append([-1] * len(source) + sequence[len(source) + 1:])
    return pad(tokens), pad(targets, value=-1)
