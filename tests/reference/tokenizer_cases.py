"""Encodes tricky texts with the trainer's Python tokenizer (the `regex` engine, real lookahead),
so the C++ tokenizer (RE2, emulated lookahead) can be checked against it.

usage: tokenizer_cases.py TOKENIZER_JSON OUT.json
"""
import json
import os
import sys

import _paths  # noqa: F401  (makes model/train importable)
from tokenizer import Tokenizer

TEXTS = [
    "Hello, world!",
    "In the beginning God created the heaven and the earth.",
    "  two leading spaces and   three inside, trailing  ",
    "tabs\tand\nnewlines\n\n\nand \r\n windows endings \n",
    "numbers 1 12 123 1234 12345 3.14159 -42",
    "contractions: I'm, you're, it's, we've, they'll, he'd, DON'T",
    "unicode: café naïve Zürich 東京 Ελληνικά emoji 🎉🚀 done",
    "symbols!!! ??? ... --- (parens) [brackets] {braces} @#$%^&*",
    "non-breaking\u00a0space and ideographic\u3000space",
    "a<|endoftext|>b and <|endoftext|><|endoftext|> twice",
    "ends with spaces   ",
    "\n",
    "x",
    "The LORD is my shepherd; I shall not want.    He maketh me to lie down in green pastures.",
]


def main(tokenizer_path, out_path):
    tokenizer = Tokenizer(tokenizer_path)
    cases = [{"text": text, "ids": tokenizer.encode(text)} for text in TEXTS]
    # ctest may run this before anything else has made the build's testdata/ directory.
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"tokenizer": tokenizer_path, "cases": cases}, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
