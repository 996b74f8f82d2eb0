r"""ERNIE-Tiny's length effect on the shipped corpus: tokens per held-out KJV verse under a
character-level vocabulary (ERNIE-Tiny's teacher) and BPE vocabularies of several sizes
(its student's subword vocabulary), each trained on the training verses only.

  nice python experiments/tiny/lengths.py
"""
import io
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
import sentencepiece as spm

from plm.data import bible


def main():
  train, test = [], []
  for _, ref, text in bible.read_verses('en_kjv'):
    book, chapter, _ = bible.parse_reference(ref)
    split = bible.chapter_split(book, chapter)
    (train if split == 'train' else test if split == 'test' else []).append(text)
  print(f'{len(train)} training verses, {len(test)} test verses (KJV)')
  print('| vocabulary | pieces | tokens per test verse (mean) | relative to characters |')
  print('|---|---|---|---|')
  chars = np.mean([len(t) for t in test])
  print(f'| characters (ERNIE-Tiny teacher style) | - | {chars:.1f} | 1.00 |')
  for kind, size in (('char', 0), ('bpe', 1000), ('bpe', 8000), ('bpe', 16000)):
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(train), model_writer=model,
                                   model_type=kind, vocab_size=size or 100,
                                   character_coverage=1.0, minloglevel=2,
                                   hard_vocab_limit=False)
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    n = np.mean([len(x) for x in sp.encode(test)])
    print(f'| sentencepiece {kind} | {sp.get_piece_size()} | {n:.1f} | {n / chars:.2f} |')


if __name__ == '__main__':
  main()
