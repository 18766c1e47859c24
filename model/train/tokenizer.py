"""Byte-level BPE: trains a Hugging Face style tokenizer.json and encodes text with it.

usage: tokenizer.py train CORPUS_DIR VOCAB_SIZE OUT/tokenizer.json
       tokenizer.py encode tokenizer.json TEXT_FILE OUT.bin     (uint16 token ids)
The pre-tokenizer is Llama-3's split pattern; merges are learned on pre-tokenized words weighted
by frequency, ties broken by the pair's bytes so training is deterministic.
"""
import collections
import heapq
import json
import sys
import time

import numpy as np
import regex

SPLIT_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
END_OF_TEXT = "<|endoftext|>"


def bytes_to_unicode():
    """GPT-2's reversible map from bytes to printable unicode characters."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


BYTE_TO_CHAR = bytes_to_unicode()


def pre_tokenize(text):
    return regex.findall(SPLIT_PATTERN, text)


def train(corpus_dir, vocab_size, out_path):
    started = time.time()
    with open(f"{corpus_dir}/train.txt", encoding="utf-8") as f:
        documents = f.read().split(f"\n{END_OF_TEXT}\n")
    word_counts = collections.Counter()
    for document in documents:
        word_counts.update(pre_tokenize(document))
    words = [list(word.encode("utf-8")) for word in word_counts]
    freqs = list(word_counts.values())
    print(f"{len(words)} distinct words from {len(documents)} documents", flush=True)

    token_bytes = {i: bytes([i]) for i in range(256)}
    pair_counts = collections.Counter()
    pair_words = collections.defaultdict(set)
    for index, (symbols, freq) in enumerate(zip(words, freqs)):
        for pair in zip(symbols, symbols[1:]):
            pair_counts[pair] += freq
            pair_words[pair].add(index)

    def heap_entry(pair):
        return (-pair_counts[pair], token_bytes[pair[0]], token_bytes[pair[1]], pair)

    heap = [heap_entry(pair) for pair in pair_counts]
    heapq.heapify(heap)
    merges = []
    num_merges = vocab_size - 256 - 1  # bytes, merges, then <|endoftext|>
    while len(merges) < num_merges and heap:
        count, _, _, pair = heapq.heappop(heap)
        if -count != pair_counts.get(pair, 0) or count == 0:
            continue  # stale entry
        new_id = 256 + len(merges)
        merges.append(pair)
        token_bytes[new_id] = token_bytes[pair[0]] + token_bytes[pair[1]]
        changed = set()
        for index in pair_words.pop(pair):
            symbols, freq = words[index], freqs[index]
            for old in zip(symbols, symbols[1:]):
                pair_counts[old] -= freq
                changed.add(old)
            merged = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
                    merged.append(new_id)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            words[index] = merged
            for new in zip(merged, merged[1:]):
                pair_counts[new] += freq
                pair_words[new].add(index)
                changed.add(new)
        del pair_counts[pair]
        for other in changed:
            if other != pair and pair_counts.get(other, 0) > 0:
                heapq.heappush(heap, heap_entry(other))
        if len(merges) % 1000 == 0:
            print(f"merges {len(merges)}/{num_merges} ({time.time() - started:.0f} s)", flush=True)

    def token_string(token_id):
        return "".join(BYTE_TO_CHAR[b] for b in token_bytes[token_id])

    vocab = {token_string(i): i for i in range(256 + len(merges))}
    eot_id = len(vocab)
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": eot_id, "content": END_OF_TEXT, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": SPLIT_PATTERN}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "vocab": vocab,
                  "merges": [f"{token_string(a)} {token_string(b)}" for a, b in merges]},
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(tokenizer, f, ensure_ascii=False)
    print(f"wrote {out_path}: {eot_id + 1} tokens in {time.time() - started:.0f} s", flush=True)


class Tokenizer:
    """Encodes with a tokenizer.json written by train(): the C++ tokenizer must agree with it."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
        self.vocab = spec["model"]["vocab"]
        self.ranks = {tuple(m.split(" ")): rank for rank, m in enumerate(spec["model"]["merges"])}
        self.special = {t["content"]: t["id"] for t in spec["added_tokens"]}
        self.cache = {}

    def encode_word(self, word):
        if word in self.cache:
            return self.cache[word]
        parts = [BYTE_TO_CHAR[b] for b in word.encode("utf-8")]
        while len(parts) > 1:
            ranked = [(self.ranks.get(pair, 1 << 30), i) for i, pair in enumerate(zip(parts, parts[1:]))]
            rank, i = min(ranked)
            if rank == 1 << 30:
                break
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        ids = [self.vocab[p] for p in parts]
        self.cache[word] = ids
        return ids

    def encode(self, text):
        ids = []
        pieces = regex.split("(" + "|".join(regex.escape(s) for s in self.special) + ")", text)
        for piece in pieces:
            if piece in self.special:
                ids.append(self.special[piece])
                continue
            for word in pre_tokenize(piece):
                ids.extend(self.encode_word(word))
        return ids


def encode_file(tokenizer_path, text_path, out_path):
    with open(text_path, encoding="utf-8") as f:
        text = f.read()
    ids = np.array(Tokenizer(tokenizer_path).encode(text), dtype=np.uint16)
    ids.tofile(out_path)
    print(f"{text_path}: {len(text.encode())} bytes -> {len(ids)} tokens "
          f"({len(text.encode()) / len(ids):.2f} bytes/token)", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "train":
        train(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif len(sys.argv) == 5 and sys.argv[1] == "encode":
        encode_file(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
