"""Rebuild plm/data/corpora/wordnet/ from Debian's WordNet 3.0 database (`wordnet-base`).

  apt-get download wordnet-base && dpkg-deb -x wordnet-base_*.deb /tmp/wordnet-base
  python tools/make_wordnet.py --wordnet_dir=/tmp/wordnet-base/usr/share/wordnet
  (or `apt-get install wordnet-base` and the default --wordnet_dir=/usr/share/wordnet)

About 2 minutes (xz at its strongest preset); the output is byte-identical from run to run.

Writes, xz-compressed:
- `synsets.jsonl.xz`: every synset, one JSON object a line: key (pos letter + offset,
  'n02084071'; adjective satellites are 'a'), lexname ('noun.animal'), lemmas (WordNet's
  spelling, underscores for spaces), senses (each lemma's sense number in index.<pos>: 1 is
  WordNet's most frequent sense of that lemma), counts (each lemma sense's SemCor tag count,
  from cntlist.rev), definition, examples (the gloss's quoted parts).
- `train.txt.xz`, `valid.txt.xz`, `test.txt.xz`: `head<TAB>relation<TAB>tail` a line.
- `noun_exceptions.txt.xz`, `verb_exceptions.txt.xz`: noun.exc and verb.exc as they are
  (`inflected base...`, e.g. `children child`), for the entity linker's lemmatiser.

The graph (WN18RR's recipe, on all of WordNet): the 11 WN18RR relations, one pointer symbol
each, read from the synset the pointer leaves (so `(dog, _hypernym, canine)`); the inverse
pointers (~ hyponym, #m/#p holonyms, -c, ;u, ;r) are never read, and where a relation links
two synsets both ways (the symmetric relations, and two odd _has_part/_member_meronym loops)
only the direction whose head key sorts first is kept, so a triple and its inverse can never
straddle splits. Lexical pointers count at synset level; duplicates are dropped.

The split is fixed by a hash, no RNG: triples in order of sha256(SALT + line), each held out
(alternately valid and test, HELD_OUT each) only if its head and tail keep another triple in
train; so every valid/test entity and relation occurs in train.
"""
import argparse
import collections
import hashlib
import json
import lzma
import os
import pathlib
import re

OUT = pathlib.Path(__file__).resolve().parents[1] / 'plm/data/corpora/wordnet'
FILES = {'n': 'noun', 'v': 'verb', 'a': 'adj', 'r': 'adv'}
RELATIONS = {  # WordNet pointer symbol -> WN18RR relation name
    '@': '_hypernym', '+': '_derivationally_related_form', '@i': '_instance_hypernym',
    '^': '_also_see', '%m': '_member_meronym', ';c': '_synset_domain_topic_of',
    '%p': '_has_part', '-u': '_member_of_domain_usage', '-r': '_member_of_domain_region',
    '$': '_verb_group', '&': '_similar_to'}
LEXNAMES = (  # lexnames(5WN): lex_filenum -> lexicographer file
    'adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute '
    'noun.body noun.cognition noun.communication noun.event noun.feeling noun.food noun.group '
    'noun.location noun.motive noun.object noun.person noun.phenomenon noun.plant '
    'noun.possession noun.process noun.quantity noun.relation noun.shape noun.state '
    'noun.substance noun.time verb.body verb.change verb.cognition verb.communication '
    'verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion '
    'verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl').split()
SALT = 'plm-wordnet-split-v1\t'
HELD_OUT = 3000  # triples in valid and in test (WN18RR: 3,034 and 3,134)


def sense_numbers(wordnet_dir: str) -> dict:
  """{(lemma lower-cased, pos, offset): sense number}, from index.<pos>'s synset order."""
  senses = {}
  for pos, name in FILES.items():
    with open(os.path.join(wordnet_dir, f'index.{name}'), encoding='utf-8') as f:
      for line in f:
        if line.startswith('  '):  # the licence header
          continue
        t = line.split()
        lemma, synset_cnt = t[0], int(t[2])
        for number, offset in enumerate(t[-synset_cnt:], start=1):
          senses[(lemma, pos, offset)] = number
  return senses


def tag_counts(wordnet_dir: str) -> dict:
  """{(lemma, pos, sense number): SemCor tag count}, from cntlist.rev."""
  counts = {}
  with open(os.path.join(wordnet_dir, 'cntlist.rev'), encoding='utf-8') as f:
    for line in f:
      key, number, count = line.split()
      lemma, _, lex_sense = key.partition('%')
      counts[(lemma, 'nvara'[int(lex_sense[0]) - 1], int(number))] = int(count)
  return counts


def parse_gloss(gloss: str) -> tuple[str, list[str]]:
  """'def; "ex one"; "ex two"' -> ('def', ['ex one', 'ex two'])."""
  examples = [e.strip() for e in re.findall(r'"([^"]*)"', gloss) if e.strip()]
  definition = gloss.split('"', 1)[0].strip().rstrip(';').strip()
  return definition, examples


def read_synsets(wordnet_dir: str):
  """Yields (synset dict, [(pointer symbol, target key)]) from data.<pos>."""
  senses, counts = sense_numbers(wordnet_dir), tag_counts(wordnet_dir)
  for pos, name in FILES.items():
    with open(os.path.join(wordnet_dir, f'data.{name}'), encoding='utf-8') as f:
      for line in f:
        if line.startswith('  '):
          continue
        fields, _, gloss = line.partition(' | ')
        t = fields.split()
        offset, lex_filenum, word_count = t[0], int(t[1]), int(t[3], 16)
        lemmas = [re.sub(r'\((a|p|ip)\)$', '', w) for w in t[4:4 + 2 * word_count:2]]
        i = 4 + 2 * word_count
        pointers = []
        for j in range(i + 1, i + 1 + 4 * int(t[i]), 4):
          symbol, target, target_pos = t[j], t[j + 1], t[j + 2]
          pointers.append((symbol, ('a' if target_pos == 's' else target_pos) + target))
        definition, examples = parse_gloss(gloss.strip())
        numbers = [senses[(w.lower(), pos, offset)] for w in lemmas]
        yield {'key': pos + offset, 'lexname': LEXNAMES[lex_filenum], 'lemmas': lemmas,
               'senses': numbers,
               'counts': [counts.get((w.lower(), pos, n), 0) for w, n in zip(lemmas, numbers)],
               'definition': definition, 'examples': examples}, pointers


def graph_triples(pointers: dict) -> list[tuple[str, str, str]]:
  """The WN18RR relations' triples, one direction of any pair linked both ways, sorted."""
  triples = {(h, RELATIONS[s], t) for h, ps in pointers.items() for s, t in ps if s in RELATIONS}
  return sorted((h, r, t) for h, r, t in triples if h <= t or (t, r, h) not in triples)


def split(triples):
  """{'train'|'valid'|'test': triples}: hash order, held out only where both ends stay in train."""
  degree = collections.Counter(e for h, _, t in triples for e in {h, t})
  order = sorted(triples, key=lambda x: hashlib.sha256((SALT + '\t'.join(x)).encode()).digest())
  held = {'valid': [], 'test': []}
  for h, r, t in order:
    name = 'valid' if len(held['valid']) <= len(held['test']) else 'test'
    if len(held[name]) == HELD_OUT:
      break
    if degree[h] > 1 and degree[t] > 1 and (h != t or degree[h] > 2):
      held[name].append((h, r, t))
      for e in {h, t}:
        degree[e] -= 1
  out = set(held['valid']) | set(held['test'])
  return {'train': [x for x in triples if x not in out],
          'valid': sorted(held['valid']), 'test': sorted(held['test'])}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--wordnet_dir', default='/usr/share/wordnet')
  parser.add_argument('--out', default=str(OUT))
  args = parser.parse_args()
  os.makedirs(args.out, exist_ok=True)
  synsets, pointers = [], {}
  for synset, ptrs in read_synsets(args.wordnet_dir):
    synsets.append(synset)
    pointers[synset['key']] = ptrs
  with lzma.open(os.path.join(args.out, 'synsets.jsonl.xz'), 'wt', encoding='utf-8',
                 preset=9 | lzma.PRESET_EXTREME) as f:
    f.writelines(json.dumps(s, ensure_ascii=False) + '\n' for s in synsets)
  for name, triples in split(graph_triples(pointers)).items():
    with lzma.open(os.path.join(args.out, f'{name}.txt.xz'), 'wt', encoding='utf-8',
                   preset=9 | lzma.PRESET_EXTREME) as f:
      f.writelines('\t'.join(x) + '\n' for x in triples)
    print(name, len(triples), 'triples')
  for pos in ('noun', 'verb'):
    with open(os.path.join(args.wordnet_dir, f'{pos}.exc'), encoding='utf-8') as src, lzma.open(
        os.path.join(args.out, f'{pos}_exceptions.txt.xz'), 'wt', encoding='utf-8',
        preset=9) as f:
      f.write(src.read())
  print(len(synsets), 'synsets')


if __name__ == '__main__':
  main()
