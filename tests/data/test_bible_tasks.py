"""The sentence-pair task built from two translations (bible_tasks.paraphrase_pairs)."""
from plm.data import bible_tasks


def test_paraphrase_pairs_label_each_pair_by_its_references():
  a = [(f'Ruth {c}:{v}', f'a{c}.{v}') for c in (1, 2) for v in range(1, 30)] + [
      ('Jude 1:1', 'a-jude'), ('Ruth 3:1', 'a-missing-in-b')]
  b = [(f'Ruth {c}:{v}', f'b{c}.{v}') for c in (1, 2) for v in range(1, 30)] + [
      ('Jude 1:1', 'b-jude'), ('Ruth 1:30', '  ')]
  pairs = bible_tasks.paraphrase_pairs(a, b, seed=1)
  # Jude has one verse (no negative in its chapter), Ruth 3:1 is not in b: both left out
  assert [p[0] for p in pairs] == [t for _, t in a[:58]]
  for text_a, text_b, label in pairs:
    assert text_b.startswith('b') and text_b != 'b  '
    same_chapter = text_a[1:].split('.')[0] == text_b[1:].split('.')[0]
    assert same_chapter  # negatives come from the same chapter
    assert (text_a[1:] == text_b[1:]) == (label == 'same'), (text_a, text_b, label)
  labels = [p[2] for p in pairs]
  assert 20 < labels.count('same') < 38  # about half of 58
  assert pairs == bible_tasks.paraphrase_pairs(a, b, seed=1)
  assert pairs != bible_tasks.paraphrase_pairs(a, b, seed=2)
