"""Rebuild plm/data/corpora/bible/*.tsv.xz from Debian's SWORD Bible packages.

  apt-get install sword-text-kjv sword-text-web sword-text-sparv libsword-utils
  python tools/make_bible_corpus.py

Each output line is `Book chapter:verse<TAB>text` (OSIS markup stripped), so the
same reference in two files is a translation pair.
"""
import html
import lzma
import pathlib
import re
import subprocess

MODULES = {'en_kjv': 'engKJV2006eb', 'en_web': 'engWEB2015eb', 'es_rv1909': 'spaRV1909eb'}
OUT = pathlib.Path(__file__).resolve().parents[1] / 'plm/data/corpora/bible'


def verses(module):
  text = subprocess.run(['mod2imp', module], capture_output=True, check=True).stdout.decode('utf-8')
  for block in text.split('$$$')[1:]:
    ref, _, body = block.partition('\n')
    if not re.search(r' \d+:[1-9]\d*$', ref):  # skip book/chapter headings (verse 0)
      continue
    body = re.sub(r'<note.*?</note>', ' ', body, flags=re.S)  # translators' notes are not verse text
    body = html.unescape(re.sub(r'<[^>]+>', ' ', body))
    body = re.sub(r'\s+', ' ', body).strip()
    body = re.sub(r' ([,.;:?!)’”])', r'\1', body)
    body = re.sub(r'([(‘“]) ', r'\1', body)
    if body:
      yield ref.strip(), body


def main():
  OUT.mkdir(parents=True, exist_ok=True)
  for name, module in MODULES.items():
    lines = [f'{ref}\t{body}\n' for ref, body in verses(module)]
    with lzma.open(OUT / f'{name}.tsv.xz', 'wt', encoding='utf-8', preset=9) as f:
      f.writelines(lines)
    print(name, len(lines), 'verses')


if __name__ == '__main__':
  main()
