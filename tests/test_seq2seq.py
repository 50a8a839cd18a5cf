"""Encoder-decoder generation (cached == uncached), and the number task's data."""

import numpy as np
import pytest

import tinyllama_np as tl
from tinyllama_np.generation.seq2seq import Seq2SeqDecoder, translate
from tinyllama_np.stories import numbers as task


def random_model(seed=0, norm_first=False):
    config = tl.EncoderDecoderConfig(17, 19, 16, 2, 2, 2, 24, max_seq_len=12, norm_first=norm_first)
    model = tl.EncoderDecoder(config, seed=seed, dtype=np.float64)
    rng = np.random.default_rng(seed)
    for name, param in model.params.items():  # so that the rows' paths differ
        if param.ndim == 1:
            param[...] = (1.0 if name.endswith("weight") else 0.0) + 0.5 * rng.standard_normal(param.shape)
        elif name.endswith("output.weight") or "embedding" in name:
            param *= 3.0
    return model


def sources():
    source = np.array([[3, 4, 5, 6, 7, 8], [9, 2, 2, 0, 0, 0], [1, 16, 5, 3, 11, 0]])
    return source, tl.padding_mask([6, 3, 5], 6)


@pytest.mark.parametrize("norm_first, seed", [(False, 0), (True, 1)])
def test_cached_greedy_equals_uncached(norm_first, seed):
    model = random_model(seed, norm_first=norm_first)
    source, mask = sources()
    cached = translate(model, source, bos_id=1, eos_id=2, max_new_tokens=9, source_mask=mask)
    uncached = translate(model, source, 1, 2, 9, mask, use_cache=False)
    assert cached == uncached
    assert len({tuple(row) for row in cached}) > 1, "rows should differ"


def test_greedy_is_argmax_of_the_full_forward():
    model = random_model(1)
    source, mask = sources()
    [row] = translate(model, source[1:2], 1, 2, 6, mask[1:2])
    target = [1]
    for _ in range(6):
        token = int(np.argmax(model.forward(source[1:2], np.array([target]), mask[1:2])[0, -1]))
        if token == 2:
            break
        target.append(token)
    assert row == target[1:]


def test_cached_beam_equals_uncached():
    model = random_model(1, norm_first=True)
    source, mask = sources()
    cached = translate(model, source, 1, 2, 8, mask, num_beams=3)
    assert cached == translate(model, source, 1, 2, 8, mask, num_beams=3, use_cache=False)
    assert cached != translate(model, source, 1, 2, 8, mask), "beam search should differ from greedy here"


def test_cache_step_logits_match_full_forward():
    model = random_model(3)
    source, mask = sources()
    decoder = Seq2SeqDecoder(model, source, mask, 1, 5)
    steps = [decoder.start()]
    for token in ([4, 5, 6], [7, 8, 9]):
        steps.append(decoder.step(token))
    with pytest.raises(ValueError, match="cache"):
        model.backward(np.zeros_like(steps[-1][:, None]))  # the last forward used the cache
    full = model.forward(source, decoder.sequences, mask)
    np.testing.assert_allclose(np.stack(steps, axis=1), full, atol=1e-12)


@pytest.mark.parametrize("kwargs, message", [
    (dict(bos_id=19), "bos_id"), (dict(eos_id=-1), "eos_id"),
    (dict(max_new_tokens=12), "max_seq_len"), (dict(max_new_tokens=0), "max_new_tokens"),
    (dict(num_beams=0), "num_beams"),
])
def test_translate_bad_arguments(kwargs, message):
    arguments = dict(bos_id=1, eos_id=2, max_new_tokens=5)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        translate(random_model(), np.array([[1, 2]]), **arguments)


@pytest.mark.parametrize("n, english, chinese", [
    (0, "zero", "零"), (10, "ten", "十"), (15, "fifteen", "十五"), (101, "one hundred and one", "一百零一"),
    (110, "one hundred and ten", "一百一十"), (342, "three hundred and forty-two", "三百四十二"),
    (1005, "one thousand and five", "一千零五"), (1100, "one thousand one hundred", "一千一百"),
    (10005, "ten thousand and five", "一万零五"), (10500, "ten thousand five hundred", "一万零五百"),
    (15000, "fifteen thousand", "一万五千"), (20310, "twenty thousand three hundred and ten", "二万零三百一十"),
    (99999, "ninety-nine thousand nine hundred and ninety-nine", "九万九千九百九十九"),
])
def test_number_names(n, english, chinese):
    assert task.english_words(n) == english
    assert task.chinese_numerals(n) == chinese


def test_number_names_are_one_to_one_and_round_trip():
    english = {task.english_words(n) for n in range(task.LARGEST + 1)}
    chinese = {task.chinese_numerals(n) for n in range(0, task.LARGEST + 1, 7)}
    assert len(english) == task.LARGEST + 1 and len(chinese) == len(range(0, task.LARGEST + 1, 7))
    source, target = task.example(4321, "en-zh")
    assert task.decode(target, "zh") == "四千三百二十一"
    assert task.decode(source, "en") == "four thousand three hundred and twenty-one"


def test_split_holds_numbers_out():
    train, held_out = task.split_numbers(seed=5, held_out=300)
    assert len(held_out) == 300 and len(train) + 300 == task.LARGEST + 1
    assert not set(train.tolist()) & set(held_out.tolist())
    drawn = task.sample_numbers(train, 2000, np.random.default_rng(0))
    assert set(drawn.tolist()) <= set(train.tolist())
    digits = np.bincount([len(str(n)) for n in drawn], minlength=6)[1:]
    assert digits.min() > 300  # each digit count about a fifth


def test_batches_line_up():
    source, target_in, target_out, mask = task.seq2seq_batch([7, 12345], ["en-zh", "zh-en"])
    assert target_in[0, 0] == task.BOS_ID and list(target_out[0, :2]) == [task.TOKEN_ID["七"], task.EOS_ID]
    assert (target_out[0, 2:] == -1).all() and mask.sum(axis=1).tolist() == [2, 10]
    tokens, targets = task.decoder_only_batch([7], ["en-zh"])
    # <to-zh> seven <sep> 七 -> targets: -1 -1 七 <eos>
    assert tokens.tolist() == [[task.TOKEN_ID["<to-zh>"], task.TOKEN_ID["seven"], task.SEP_ID, task.TOKEN_ID["七"]]]
    assert targets.tolist() == [[-1, -1, task.TOKEN_ID["七"], task.EOS_ID]]


@pytest.mark.parametrize("bad", [-1, 100_000, 3.0, True])
def test_numbers_out_of_range(bad):
    with pytest.raises(ValueError, match="0..99999"):
        task.english_words(bad)
