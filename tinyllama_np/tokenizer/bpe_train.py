"""Training byte-level BPE (byte pair encoding, 字节对编码) fast enough to use in class.

The textbook loop - count every adjacent pair in the whole corpus, merge the most frequent
one everywhere, repeat - costs O(merges x corpus). Two observations make it fast:

1. After the regex pre-split, a corpus is mostly the same chunks (" the", " and", "的")
   over and over. We count each distinct chunk once and remember how often it occurs, so
   every later step works on the distinct chunks, weighted by their counts.
2. Merging a pair only changes the chunks that contain it. We keep, for every pair, the
   set of chunks it occurs in, and update the pair counts of just those chunks.

The most frequent pair is found with a heap that may hold outdated counts (see
`_pop_most_frequent`), so no step ever scans all pairs.
"""

import heapq
from collections import Counter, defaultdict

import regex
from ..progress import progress_bar


def train_bpe(text, n_new_tokens, pattern, progress=False):
    """Learn up to `n_new_tokens` merges on `text`; return the token list, as bytes.

    The list starts with the 256 single bytes (ids 0..255, so any text can be encoded),
    followed by one token per merge in the order learned: the index of a token is its
    rank. Ties between equally frequent pairs go to the pair of smaller ids, so training
    is deterministic. Training stops early if no chunk has two tokens left to merge.
    """
    chunk_counts = Counter(regex.findall(pattern, text))
    chunks = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
    counts = list(chunk_counts.values())

    token_bytes = [bytes([b]) for b in range(256)]
    token_id = {piece: i for i, piece in enumerate(token_bytes)}

    pair_counts = defaultdict(int)
    chunks_with_pair = defaultdict(set)
    for index, (chunk, count) in enumerate(zip(chunks, counts)):
        for pair in zip(chunk, chunk[1:]):
            pair_counts[pair] += count
            chunks_with_pair[pair].add(index)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    bar = progress_bar(n_new_tokens, unit="merges", desc="BPE", enabled=progress)
    while len(token_bytes) < 256 + n_new_tokens:
        pair = _pop_most_frequent(heap, pair_counts)
        if pair is None:
            break  # every chunk is a single token: nothing left to merge
        merged = token_bytes[pair[0]] + token_bytes[pair[1]]
        # A safeguard: should two different pairs ever spell the same bytes ("a"+"bc"
        # and "ab"+"c"), the second reuses the first's id, since a rank file cannot hold
        # the same bytes twice.
        new_id = token_id.get(merged)
        if new_id is None:
            new_id = len(token_bytes)
            token_bytes.append(merged)
            token_id[merged] = new_id
            if bar is not None:
                bar.update(1)
        # The set may name chunks that no longer hold the pair (we never remove from
        # it); merging changes nothing in those, so they are merely a little wasted work.
        grown = set()
        for index in chunks_with_pair.pop(pair):
            chunks[index] = _merge_in_chunk(chunks[index], counts[index], pair, new_id,
                                            pair_counts, chunks_with_pair, index, grown)
        del pair_counts[pair]
        # Only pairs with the new token can have grown: push their new counts. Every
        # other pair could only shrink, which `_pop_most_frequent` copes with.
        for grown_pair in grown:
            heapq.heappush(heap, (-pair_counts[grown_pair], grown_pair))
    if bar is not None:
        bar.close()
    return token_bytes


def _merge_in_chunk(chunk, count, pair, new_id, pair_counts, chunks_with_pair, index,
                    grown):
    """Replace `pair` by `new_id` in one chunk, left to right; return the new chunk.

    Around each merge, `x first second y` becomes `x new y`: the pairs (x, first) and
    (second, y) lose this chunk's count, (x, new) and (new, y) gain it, and nothing else
    in the chunk changes. `x` is read from the merged output, so two merges in a row
    (`a b a b` -> `N N`) are counted right.
    """
    first, second = pair
    merged = []
    i = 0
    while i < len(chunk):
        if chunk[i] == first and i + 1 < len(chunk) and chunk[i + 1] == second:
            if merged:
                before = merged[-1]
                pair_counts[before, first] -= count
                pair_counts[before, new_id] += count
                chunks_with_pair[before, new_id].add(index)
                grown.add((before, new_id))
            if i + 2 < len(chunk):
                after = chunk[i + 2]
                pair_counts[second, after] -= count
                pair_counts[new_id, after] += count
                chunks_with_pair[new_id, after].add(index)
                grown.add((new_id, after))
            merged.append(new_id)
            i += 2
        else:
            merged.append(chunk[i])
            i += 1
    return merged


def _pop_most_frequent(heap, pair_counts):
    """Pop the pair with the highest current count, or None when no pair is left.

    Heap entries are (-count, pair). A pair's count only ever shrinks after it was
    pushed, except for pairs with the newest token, which are pushed again. So an entry
    whose count is out of date is too high: we push it back with its true count and look
    again. An entry that is up to date is the true maximum.
    """
    while heap:
        negative_count, pair = heapq.heappop(heap)
        current = pair_counts.get(pair, 0)
        if current == -negative_count and current > 0:
            return pair
        if current > 0:
            heapq.heappush(heap, (-current, pair))
    return None
