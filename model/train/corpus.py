"""Builds the bundled model's English corpus from Debian packages, with a held-out split.

Sources (all installed by `apt-get install bible-kjv bible-kjv-text fortunes fortunes-min
wordnet-base`):
  - the King James Bible (public domain), one document per chapter, via the `bible` program;
  - fortune cookies (fortune-mod data files, freely redistributable), one document per fortune;
  - WordNet 3.0 glosses (WordNet 3.0 license), one document per synset: "lemma: gloss".
Every 25th document goes to the held-out split. Documents are joined with <|endoftext|>.

usage: corpus.py OUTDIR  ->  OUTDIR/train.txt, OUTDIR/heldout.txt
"""
import glob
import os
import re
import subprocess
import sys

SEPARATOR = "<|endoftext|>"
HELDOUT_EVERY = 25


def bible_chapters():
    text = subprocess.run(["bible", "-l0", "gen1:1-rev22:21"], check=True, capture_output=True,
                          text=True).stdout
    chapter = []
    for line in text.splitlines():
        verse = re.match(r"\s+\d+ (.*)", line)
        if verse:
            chapter.append(verse.group(1).strip())
        elif line.strip():
            if chapter:
                yield " ".join(chapter)
            chapter = [line.strip() + "."]
    if chapter:
        yield " ".join(chapter)


def fortunes():
    for path in sorted(glob.glob("/usr/share/games/fortunes/*.u8")):
        if os.path.basename(path).split(".")[0] in ("art", "ascii-art"):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            for cookie in f.read().split("\n%\n"):
                cookie = cookie.strip("%\n ")
                if len(cookie) > 20:
                    yield cookie


def wordnet_glosses():
    for part in ("noun", "verb", "adj", "adv"):
        with open(f"/usr/share/wordnet/data.{part}", encoding="latin-1") as f:
            for line in f:
                if line.startswith("  ") or "|" not in line:
                    continue  # the license header
                fields = line.split()
                lemma = fields[4].replace("_", " ")
                gloss = line.split("|", 1)[1].strip()
                yield f"{lemma}: {gloss}"


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    splits = {"train": [], "heldout": []}
    counts = {}
    index = 0
    for name, documents in (("bible", bible_chapters()), ("fortunes", fortunes()),
                            ("wordnet", wordnet_glosses())):
        counts[name] = 0
        for document in documents:
            splits["heldout" if index % HELDOUT_EVERY == 0 else "train"].append(document)
            counts[name] += len(document.encode())
            index += 1
    for split, documents in splits.items():
        with open(os.path.join(out_dir, f"{split}.txt"), "w", encoding="utf-8") as f:
            f.write(f"\n{SEPARATOR}\n".join(documents))
    print(" ".join(f"{name}={size / 1e6:.1f}MB" for name, size in counts.items()),
          f"documents={index}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
