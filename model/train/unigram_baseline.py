"""The unigram baseline for a model card: held-out cross-entropy of token frequencies.

usage: unigram_baseline.py DATA_DIR VOCAB_SIZE   (DATA_DIR holds train.bin and heldout.bin)
Frequencies come from the training split with add-one smoothing, so every token has mass.
"""
import math
import os
import sys

import numpy as np


def main(data_dir, vocab_size):
    train = np.fromfile(os.path.join(data_dir, "train.bin"), dtype=np.uint16)
    heldout = np.fromfile(os.path.join(data_dir, "heldout.bin"), dtype=np.uint16)
    counts = np.bincount(train, minlength=vocab_size).astype(np.float64) + 1.0
    log_probability = np.log(counts / counts.sum())
    loss = -log_probability[heldout[1:]].mean()  # the tokens a model would be asked to predict
    print(f"unigram held-out loss {loss:.4f} nats/token, perplexity {math.exp(loss):.1f} "
          f"over {len(heldout) - 1} tokens")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]))
