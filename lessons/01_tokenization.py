"""Lesson 01: tokenization (分词) - from text to the integers a model reads.

Run it:  python lessons/01_tokenization.py   (a few seconds; or open it as a notebook)

The chapter's section 2.2 turns "words" into vectors (词嵌入, word embedding), and its
pre-training objective (3.2.1, 因果语言模型 CLM) predicts "the next word". A real LLaMA
never sees words: it sees *tokens*, pieces of text chosen by a tokenizer, and predicts
the next token. This lesson builds the tokenizer of LLaMA 3 - byte-level BPE (byte pair
encoding, 字节对编码) over regex pre-split text - and measures how it treats English and
Chinese, which matters for the multilingual support (多语言支持) of section 1.3.

A gentle correction to section 1.3: LLaMA stands for "Large Language Model Meta AI".
"""

# %%
import os
import tempfile
from collections import Counter

import regex

import tinyllama_np as tl
from tinyllama_np.tokenizer import GPT2_PATTERN, LLAMA3_PATTERN
from tinyllama_np.bench.tokenizer import mixed_text

# %% [markdown]
# ## 1. Text is bytes
# Before any tokenizer, text is a sequence of Unicode characters, and UTF-8 stores each
# one as 1 to 4 bytes: English letters take 1, Chinese characters (汉字) take 3, most
# emoji take 4. Byte-level BPE starts from these bytes, so its first 256 tokens are
# simply the 256 possible byte values.

# %%
for text in ["LLaMA", "模型", "🦙"]:
    data = text.encode("utf-8")
    print(f"{text!r}: {len(text)} chars -> {len(data)} bytes {list(data)}")

# %% [markdown]
# ## 2. BPE step by step (the textbook loop)
# Byte pair encoding learns a vocabulary by repeating one step: count every pair of
# adjacent tokens in the training text, and make the most frequent pair a new token.
# Each merge makes the text shorter by the number of times the pair occurred.
# The loop below is the plain version, which recounts everything at every step.

# %%
SMALL_TEXT = "low lower lowest newer newest wider widest 模型 模型 大模型 语言模型"


def merge_everywhere(ids, pair, new_id):
    """Replace each occurrence of `pair` in `ids`, left to right, by `new_id`."""
    merged, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged


def textbook_bpe(text, n_merges, pattern, verbose=False):
    """Learn `n_merges` tokens; return the vocabulary as a list of bytes (id = index)."""
    # Pre-split (section 3 explains why) and count each distinct chunk once.
    chunk_counts = Counter(regex.findall(pattern, text))
    chunks = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
    counts = list(chunk_counts.values())
    vocabulary = [bytes([b]) for b in range(256)]
    for _ in range(n_merges):
        pair_counts = Counter()
        for chunk, count in zip(chunks, counts):
            for pair in zip(chunk, chunk[1:]):
                pair_counts[pair] += count
        if not pair_counts:
            break
        # The most frequent pair; ties go to the smaller ids, as in our fast trainer.
        best = min(pair_counts, key=lambda pair: (-pair_counts[pair], pair))
        vocabulary.append(vocabulary[best[0]] + vocabulary[best[1]])
        new_id = len(vocabulary) - 1
        chunks = [merge_everywhere(chunk, best, new_id) for chunk in chunks]
        if verbose:
            left, right = (vocabulary[i].decode("utf-8", "replace") for i in best)
            total = sum(len(chunk) * count for chunk, count in zip(chunks, counts))
            print(f"merge {new_id - 255:2}: {left!r:>8} + {right!r:<8} seen "
                  f"{pair_counts[best]}x -> token {new_id} "
                  f"{vocabulary[new_id].decode('utf-8', 'replace')!r:<10} "
                  f"(text is now {total} tokens)")
    return vocabulary


print(f"{len(SMALL_TEXT.encode())} bytes to start with")
small_vocabulary = textbook_bpe(SMALL_TEXT, 14, LLAMA3_PATTERN, verbose=True)
# Notice: the first Chinese merges join the 3 bytes of one character (shown as '\ufffd'
# when a piece is only part of a character), and only then characters into words.

# %% [markdown]
# The textbook loop costs (number of merges) x (size of the corpus). Our trainer
# (`tinyllama_np/tokenizer/bpe_train.py`) counts the pairs once and then only updates the
# chunks that contain the merged pair. It must learn exactly the same tokens:

# %%
fast = tl.BPETokenizer.train(SMALL_TEXT, 256 + 14, special_tokens=())
fast_vocabulary = sorted(fast.ranks, key=fast.ranks.get)
assert fast_vocabulary == small_vocabulary, "fast trainer disagrees with the textbook"
print("fast trainer == textbook loop: OK")

# %% [markdown]
# ## 3. The regex pre-split (预切分)
# Before BPE, LLaMA 3 cuts the text with a regular expression into words, numbers of at
# most 3 digits, punctuation runs and whitespace. Merges never cross these cuts, so no
# token is "dog." or "the cat": the vocabulary is spent on reusable pieces. Note the
# space travels with the word after it (" cat"), and that Chinese, written without
# spaces, stays in one chunk until punctuation.

# %%
SENTENCES = ["I've counted 1234567 llamas, haven't you?  OK!",
             "大语言模型(LLM)能够从海量文本数据中学习语言模式。"]
for name, pattern in [("LLaMA 3", LLAMA3_PATTERN), ("GPT-2", GPT2_PATTERN)]:
    print(f"{name} pre-split:")
    for sentence in SENTENCES:
        print("   ", regex.findall(pattern, sentence))
assert regex.findall(LLAMA3_PATTERN, "1234567") == ["123", "456", "7"]
assert regex.findall(GPT2_PATTERN, " 1234567") == [" 1234567"]

# %% [markdown]
# ## 4. Compression: English versus Chinese
# We train a 2,048-token vocabulary on ~300 KB of text that is half English, half
# Chinese (random words, generated by the package so the lesson needs no download), and
# count how many bytes and characters each token covers on two new paragraphs.

# %%
corpus = mixed_text(300_000, seed=0)
tokenizer = tl.BPETokenizer.train(corpus, 2048)
print(f"trained {tokenizer.vocab_size} tokens on {len(corpus.encode()):,} bytes")

ENGLISH = ("The little llama read a story to her friends in the garden every evening. "
           "They laughed when the fox found the apple under the old tree.")
CHINESE = "小羊驼每天晚上在花园里给朋友们读故事。狐狸在老树下找到苹果的时候，他们都笑了。"

for name, text in [("English", ENGLISH), ("Chinese", CHINESE)]:
    ids = tokenizer.encode(text)
    n_bytes = len(text.encode("utf-8"))
    print(f"{name:8} {len(text):4} chars {n_bytes:4} bytes {len(ids):4} tokens: "
          f"{n_bytes / len(ids):.2f} bytes/token, {len(text) / len(ids):.2f} chars/token "
          + "#" * round(4 * n_bytes / len(ids)))
    print("   ", [tokenizer.decode([i]) for i in ids[:12]], "...")
    assert tokenizer.decode(ids) == text
# Words the training text had (每天, 花园, " story") are single tokens; characters it never
# saw (羊, 驼 in 羊驼 "llama") fall apart into their 3 bytes, and "llama" into letters.
# So how well a language compresses depends on how much of it the tokenizer was trained
# on: a tokenizer trained mostly on English spends several tokens per Chinese character,
# which makes Chinese text longer (slower, and less of it fits in the context window).

# %% [markdown]
# ## 5. Why byte-level BPE never meets an unknown character
# A word-level vocabulary (the chapter's 词嵌入 in section 2.2 looks words up in a table)
# must map anything it has not seen to one <unk> token, and the text is lost. Byte-level
# BPE always has the 256 single bytes to fall back on: every string is some sequence of
# bytes, so every string can be encoded, and decoded back exactly.

# %%
word_vocabulary = {word: i for i, word in enumerate(set(corpus.split()))}
unseen = "Ελληνικά 🦙 ñandú 龘"
print("word-level:", [word_vocabulary.get(word, "<unk>") for word in unseen.split()])
ids = tokenizer.encode(unseen)
print("byte-level:", ids)
print("    pieces:", [tokenizer.token_bytes(i) for i in ids])
assert tokenizer.decode(ids) == unseen
llama_ids = tokenizer.encode("🦙")
assert all(i < 256 for i in llama_ids), "an emoji never seen in training is raw bytes"
# A slice of ids may end inside a character: decoding gives the replacement character
# U+FFFD instead of an error, which matters when a model prints tokens one by one.
print("first byte of the llama alone decodes to:", repr(tokenizer.decode(llama_ids[:1])))

# %% [markdown]
# ## 6. Special tokens
# LLaMA 3 marks the start of a document with <|begin_of_text|> and its end with
# <|end_of_text|>. They get the ids after the ordinary tokens and are never made by
# merges. The same letters typed in a text are ordinary text unless you allow them, so
# a user cannot inject a control token.

# %%
ids = tokenizer.encode("Hi<|end_of_text|>", bos=True)
print("bos + text:", ids, "-> begins with", tokenizer.bos_id)
allowed = tokenizer.encode("Hi<|end_of_text|>", allowed_special="all")
print("allowed   :", allowed, "-> ends with", tokenizer.eos_id)
assert tokenizer.eos_id not in ids and allowed[-1] == tokenizer.eos_id

# %% [markdown]
# ## 7. The saved file: LLaMA 3's tokenizer.model format
# The whole tokenizer is its ranks: one line per token, the base64 of its bytes and its
# rank (= id). A small .json sidecar stores the pattern and the special tokens.

# %%
with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "tokenizer.model")
    tokenizer.save(path)
    with open(path) as file:
        lines = file.read().splitlines()
    for line in lines[255:260]:
        encoded, rank = line.split()
        print(f"{line:16} = rank {rank}: {tokenizer.token_bytes(int(rank))!r}")
    assert tl.load_tokenizer(path).encode(CHINESE) == tokenizer.encode(CHINESE)

# %% [markdown]
# ## Exercise
# LLaMA 3 splits numbers into groups of at most three digits (\p{N}{1,3}); GPT-2 keeps a
# number whole (\p{N}+); LLaMA 1/2 split every digit apart.
# 1. Make a pattern with one digit per chunk:
#        ONE_DIGIT = LLAMA3_PATTERN.replace(r"\p{N}{1,3}", r"\p{N}")
#    train `tl.BPETokenizer.train(corpus, 2048, pattern=ONE_DIGIT)`, and print how
#    "In 2024 we counted 1234567 llamas" is tokenized. Do the same with GPT2_PATTERN.
# 2. With GPT-2's pattern, how many distinct number tokens end up in the vocabulary
#    (hint: `[t for t in tokenizer.ranks if t.strip().isdigit()]`)? Why could
#    single-digit tokens make arithmetic easier for a model to learn?
