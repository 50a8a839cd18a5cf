"""`tinyllama-np tokenizer bench`: how fast BPE trains and encodes.

Without `--data`, it makes its own text: about 1 MB of English and Chinese sentences,
half of each by bytes, drawn from the small word lists below with a fixed seed, so every
run measures the same input.
"""

import random
import time

from ..tokenizer.bpe import BPETokenizer

ENGLISH_WORDS = """
the a an and or but so because when while after before if then there here this that
these those it its he she they we you i me him her them us my your our their one two
three four five ten many some every each other little big small old new young happy
sad quiet loud bright dark warm cold fast slow kind brave clever gentle tired hungry
cat dog bird fish rabbit fox bear mouse horse frog owl tree river hill forest garden
house door window road town village sky sun moon star rain snow wind cloud boat
ball book box cake apple bread milk tea song story friend mother father sister brother
teacher child girl boy king queen farmer baker doctor painter name day night morning
evening week year time home school park shop market bridge lake sea island mountain
run walk jump swim fly sing play read write draw cook eat drink sleep look see hear
find found give gave take took make made want wanted like liked love loved help helped
say said tell told ask asked think thought know knew feel felt learn learned build
built open opened close closed smile smiled laugh laughed cry cried wait waited
is was are were has had have will would can could should did does do not very too
also again always never often soon today tomorrow yesterday together away back up
down in on at to from with without under over near far into out of about
""".split()

CHINESE_WORDS = """
我们 你们 他们 她们 今天 明天 昨天 早上 晚上 时候 朋友 老师 学生 孩子 妈妈 爸爸
姐姐 弟弟 小猫 小狗 小鸟 兔子 狐狸 森林 花园 房子 学校 公园 商店 河流 大海 山上
天空 太阳 月亮 星星 下雨 下雪 春天 夏天 秋天 冬天 故事 书本 苹果 面包 牛奶 茶水
喜欢 知道 觉得 认为 希望 开始 结束 学习 工作 休息 睡觉 吃饭 喝水 唱歌 跳舞 跑步
游泳 画画 写字 读书 看见 听见 找到 帮助 回家 出门 一起 已经 还是 因为 所以 但是
如果 虽然 然后 非常 很多 一些 每天 总是 有时 突然 慢慢 高兴 难过 安静 热闹 勇敢
聪明 温柔 美丽 可爱 语言 模型 文字 句子 词语 意思 问题 答案 世界 城市 村子 国家
的 了 是 在 有 和 也 就 都 很 不 他 她 它 我 你 这 那 一个 两个 三只 小
""".split()

ENGLISH_PUNCTUATION = [".", ".", ".", "!", "?", ","]
CHINESE_PUNCTUATION = ["。", "。", "。", "！", "？", "，"]


def mixed_text(n_bytes=1_000_000, seed=0):
    """About `n_bytes` of UTF-8 text: alternating English and Chinese paragraphs.

    The random words make nonsense, but with the statistics that matter here: frequent
    short words, rarer long ones, punctuation, numbers, newlines, and Chinese characters
    (3 bytes each in UTF-8) without spaces between words.
    """
    rng = random.Random(seed)
    paragraphs = []
    english_bytes = chinese_bytes = 0
    while english_bytes + chinese_bytes < n_bytes:
        if english_bytes <= chinese_bytes:
            paragraph = _english_paragraph(rng)
            english_bytes += len(paragraph.encode("utf-8")) + 1
        else:
            paragraph = _chinese_paragraph(rng)
            chinese_bytes += len(paragraph.encode("utf-8")) + 1
        paragraphs.append(paragraph)
    return "\n".join(paragraphs) + "\n"


def _english_paragraph(rng):
    sentences = []
    for _ in range(rng.randint(2, 6)):
        words = [_weighted_choice(rng, ENGLISH_WORDS) for _ in range(rng.randint(4, 14))]
        if rng.random() < 0.2:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 99999)))
        sentence = " ".join(words)
        sentences.append(sentence[0].upper() + sentence[1:] + rng.choice(ENGLISH_PUNCTUATION))
    return " ".join(sentences)


def _chinese_paragraph(rng):
    sentences = []
    for _ in range(rng.randint(2, 6)):
        words = [_weighted_choice(rng, CHINESE_WORDS) for _ in range(rng.randint(3, 10))]
        if rng.random() < 0.2:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 9999)))
        sentences.append("".join(words) + rng.choice(CHINESE_PUNCTUATION))
    return "".join(sentences)


def _weighted_choice(rng, words):
    # Squaring a uniform number favours the start of the list: a few words are very
    # common and most are rare, roughly as in real text (Zipf's law).
    return words[int(rng.random() ** 2 * len(words))]


def run_bench(text, vocab_size=4096):
    """Train on `text`, then encode it; return a dict of timings and sizes."""
    n_bytes = len(text.encode("utf-8"))
    start = time.perf_counter()
    tokenizer = BPETokenizer.train(text, vocab_size)
    train_seconds = time.perf_counter() - start

    # A fresh tokenizer has an empty cache, so the timing includes filling it.
    tokenizer = BPETokenizer(tokenizer.ranks, tokenizer.pattern, tokenizer.special_tokens)
    start = time.perf_counter()
    ids = tokenizer.encode(text)
    encode_seconds = time.perf_counter() - start
    if tokenizer.decode(ids) != text:
        raise RuntimeError("bench: decode(encode(text)) is not the text")
    result = {
        "bytes": n_bytes,
        "vocab_size": tokenizer.vocab_size,
        "train_seconds": train_seconds,
        "encode_seconds": encode_seconds,
        "encode_mb_per_second": n_bytes / 1e6 / encode_seconds,
        "tokens": len(ids),
        "bytes_per_token": n_bytes / len(ids),
    }
    result.update(_compare_with_tiktoken(tokenizer, text, ids))
    return result


def _compare_with_tiktoken(tokenizer, text, ids):
    """Time the reference library on the same ranks, if it is installed."""
    try:
        import tiktoken
    except ImportError:
        return {}
    reference = tiktoken.Encoding(name="bench", pat_str=tokenizer.pattern,
                                  mergeable_ranks=tokenizer.ranks,
                                  special_tokens=tokenizer.special_tokens)
    start = time.perf_counter()
    reference_ids = reference.encode(text, disallowed_special=())
    return {"tiktoken_seconds": time.perf_counter() - start,
            "tiktoken_same_ids": reference_ids == ids}
