"""Offline entity linking over a graph's entity names, aligned to the first subword of a mention.

  table = linker.wordnet_aliases(graph.entities)  # nouns; WordNet's most frequent sense
  mentions = linker.link(table, 'The dogs of New York.')
  # [Mention(4, 8, 'dogs', 'n02084071'), Mention(12, 20, 'New York', 'n09119277')]
  linker.align_to_subwords(text, mentions, tokenizer)
  # [(2, 'n02084071'), (4, 'n09119277')] if the pieces are ▁The ▁dogs ▁of ▁New ▁York .

Aliases: every lemma of every entity, lower-cased, '_' read as a space, cut into words (runs of
letters and digits, apostrophes inside a word kept: "don't", "a'man"). `link` scans the words
left to right and takes the longest alias that starts at each word, so 'new york' beats 'new'
and 'york' and mentions never overlap. The words of a multi-word mention may be apart only by
whitespace (an alias's space, or in text also a hyphen) or one hyphen (an alias's hyphen:
'have-not' never matches 'have not'); never by '.', ',' and the like. The last word may also
match without a possessive 's (the mention then ends before it) or as a noun lemma (WordNet's
morphy: noun.exc, then the -s/-ses/-xes/-zes/-ches/-shes/-men/-ies rules): 'children' links
'child'; where several forms are aliases, the one with more SemCor tags wins ('men': 'man').

Sense choice (deterministic):
1. Part of speech: a single-word mention is linked only if the word's most frequent reading is
   in `pos` (nouns by default): SemCor tag counts (WordNet's cntlist) summed per part of
   speech over the word and its noun/verb lemmas; ties link. So 'saw' (verb 'see') and 'bear'
   (verb) are left alone. Closed-class words (STOPWORDS: 'a', 'in', 'it', 'us', KJV 'art',
   'thee', ...) and one-character words are never single-word mentions, nor the first word of
   a longer one unless a later word is capitalised ('the City' of London, not 'the city').
2. Case: a mention that starts upper-case (and does not start the text or a sentence) prefers
   the lemmas WordNet writes upper-case ('Job' the patriarch, 'Lord' = God); one that starts
   lower-case prefers the lower-case lemmas; if none fits, all stay candidates.
3. Most frequent sense: of the candidates, the lowest sense number (WordNet's first-listed
   synset for the lemma in index.<pos>), ties broken by `pos` order, then by key.
"""
from collections.abc import Iterable, Sequence
import dataclasses
import functools
import re

from plm.errors import UserError

WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")  # letters and digits, apostrophes inside
POSSESSIVE = re.compile(r"['’]s$")
SENTENCE_END = '.!?'
STOPWORDS = frozenset((
    # Closed-class English words that WordNet also lists as nouns ('a' vitamin A, 'in' inch,
    # 'it' information technology, 'us' United States, 'will' testament, 'may' the month).
    'a an the this that these those i me my mine we us our ours you your yours he him his she '
    'her hers it its they them their theirs who whom whose which what and or but nor so yet for '
    'of in on at by to from with into onto upon about above below over under up down out off '
    'than then as if because while when where whether not no yes be am is are was were been '
    'have has had do does did shall should will would may might must can could one ones all any '
    'some each every both either neither other another such own same very too also just only '
    'even here there now '
    # Archaic forms of the King James Bible ('art' as in 'thou art').
    'thee thou thy thine ye art hast hath doth dost shalt wilt unto saith yea nay').split())
_NOUN_RULES = (('s', ''), ('ses', 's'), ('xes', 'x'), ('zes', 'z'), ('ches', 'ch'),
               ('shes', 'sh'), ('men', 'man'), ('ies', 'y'))
_VERB_RULES = (('s', ''), ('ies', 'y'), ('es', 'e'), ('es', ''), ('ed', 'e'), ('ed', ''),
               ('ing', 'e'), ('ing', ''))


@dataclasses.dataclass(frozen=True)
class Mention:
  start: int  # character offsets in the text: text[start:end] == surface
  end: int
  surface: str
  entity: str  # entity key


@dataclasses.dataclass(frozen=True)
class AliasTable:
  """Aliases and what the sense choice needs; make it with `alias_table` or `wordnet_aliases`."""
  aliases: dict  # alias ('new york', 'have-not') -> ((lemma, entity key), ...) in sense order
  prefixes: frozenset  # the first k words of every alias, space-joined, k < its length
  max_words: int  # longest alias, in words
  pos: tuple[str, ...]  # allowed parts of speech ('n', 'v', 'a', 'r')
  pos_counts: dict  # (alias, pos) -> SemCor tags; empty: no part-of-speech check
  exceptions: dict  # 'noun'|'verb' -> {inflected: bases}; no 'noun': no lemmatising
  stopwords: frozenset

  @functools.cached_property
  def entities(self) -> frozenset:
    """Every entity an alias can link to (computed once)."""
    return frozenset(e for candidates in self.aliases.values() for _, e in candidates)


def tokens(text: str) -> tuple[list[re.Match], list[str | None]]:
  """(word matches, the gap after each but the last: ' ' (whitespace), '-' or None (other))."""
  words = list(WORD.finditer(text))
  gaps = []
  for a, b in zip(words, words[1:]):
    gap = text[a.end():b.start()]
    gaps.append(' ' if not gap.strip() else '-' if gap == '-' else None)
  return words, gaps


def alias_key(lemma: str) -> str | None:
  """'New_York' -> 'new york'; None for a lemma no text can match ('St._Louis': '.' between)."""
  words, gaps = tokens(lemma.replace('_', ' ').lower())
  if not words or None in gaps:
    return None
  return ''.join(w.group() + g for w, g in zip(words, gaps + ['']))


def alias_table(entries: Iterable[tuple[str, str, int]], *, pos: Sequence[str] = ('n',),
                pos_counts=None, exceptions=None, stopwords=STOPWORDS) -> AliasTable:
  """The table of (lemma, entity key, sense number) entries ('_' in a lemma is a space).

  The part of speech of an entity is its key's first letter (WordNet keys: 'n02084071').
  """
  pos = tuple(pos)
  found = {}
  for lemma, entity, sense in entries:
    key = alias_key(lemma)
    rank = pos.index(entity[0]) if entity[0] in pos else len(pos)
    if key:
      found.setdefault(key, set()).add((sense, rank, entity, lemma.replace('_', ' ')))
  aliases = {k: tuple((lemma, e) for _, _, e, lemma in sorted(c)) for k, c in found.items()}
  split = [k.replace('-', ' ').split(' ') for k in aliases]
  return AliasTable(aliases=aliases,
                    prefixes=frozenset(' '.join(w[:i]) for w in split for i in range(1, len(w))),
                    max_words=max(map(len, split), default=0), pos=pos,
                    pos_counts=dict(pos_counts or {}), exceptions=dict(exceptions or {}),
                    stopwords=frozenset(stopwords))


def wordnet_aliases(entities: Iterable[str] | None = None, pos: Sequence[str] = ('n',),
                    lemmatize: bool = True, stopwords=STOPWORDS) -> AliasTable:
  """The alias table of WordNet synsets (all, or `entities`, e.g. graph.entities) of `pos`."""
  from plm.data import kg  # pylint: disable=g-import-not-at-top  # linking alone needs no TFDS
  pos = tuple(pos)
  if not pos or set(pos) - set('nvar'):
    raise UserError(f"pos={pos}: name parts of speech among 'n', 'v', 'a', 'r'")
  synsets = kg.load_synsets()
  keep = set(synsets) if entities is None else set(entities)
  pos_counts = {}
  for s in synsets.values():
    for lemma, count in zip(s.lemmas, s.counts):
      key = (alias_key(lemma), s.key[0])
      pos_counts[key] = pos_counts.get(key, 0) + count
  entries = [(lemma, s.key, sense) for s in synsets.values() if s.key in keep and s.key[0] in pos
             for lemma, sense in zip(s.lemmas, s.senses)]
  exceptions = {p: kg.load_exceptions(p) for p in ('noun', 'verb')} if lemmatize else {}
  return alias_table(entries, pos=pos, pos_counts=pos_counts, exceptions=exceptions,
                     stopwords=stopwords)


def _lemmas(word: str, exceptions: dict, rules) -> list[str]:
  """WordNet morphy's candidate lemmas of an inflected word (the word itself not included)."""
  out = list(exceptions.get(word, ()))
  out += [word[:-len(a)] + b for a, b in rules if word.endswith(a) and word[:-len(a)] + b]
  return [w for w in out if w != word]


def _allowed_reading(table: AliasTable, word: str) -> bool:
  """Whether the word's most frequent part of speech (SemCor tags) is an allowed one."""
  if not table.pos_counts:
    return True
  readings = {'n': [word], 'v': [word], 'a': [word], 'r': [word]}
  if table.exceptions:
    readings['n'] += _lemmas(word, table.exceptions.get('noun', {}), _NOUN_RULES)
    readings['v'] += _lemmas(word, table.exceptions.get('verb', {}), _VERB_RULES)
  best = {p: max(table.pos_counts.get((w, p), 0) for w in ws) for p, ws in readings.items()}
  return max(best[p] for p in table.pos) >= max(best[p] for p in best if p not in table.pos)


def _lookup(table: AliasTable, head: str, last: str):
  """(candidates, characters cut from the end) of the words `head` + `last`, or (None, 0).

  `last` is tried as written, without a possessive 's, and lemmatised as a noun; a hyphen
  between words also matches an alias's space. Of the forms that are aliases, the one with
  the most SemCor tags wins (so 'men' is 'man', not the 'men' of 'work force'); ties go to
  the earlier form.
  """
  forms = [(last, 0)] + ([(last[:-2], 2)] if POSSESSIVE.search(last) else [])
  if 'noun' in table.exceptions:
    forms += [(base, cut) for form, cut in list(forms)
              for base in _lemmas(form, table.exceptions['noun'], _NOUN_RULES)]
  found = []
  for form, cut in forms:
    key = head + form
    for k in (key, key.replace('-', ' ')) if '-' in head else (key,):
      if k in table.aliases:
        count = max(table.pos_counts.get((k, p), 0) for p in table.pos)
        found.append((count, -len(found), k, cut))
        break
  if not found:
    return None, 0
  _, _, key, cut = max(found)
  return table.aliases[key], cut


def _choose(candidates, surface: str, initial: bool) -> str:
  """Rules 2 and 3 of the module docstring: case preference, then the first (sense order)."""
  if not initial:
    fits = [e for lemma, e in candidates if lemma[:1].isupper() == surface[:1].isupper()]
    if fits:
      return fits[0]
  return candidates[0][1]


def _initial(text: str, start: int) -> bool:
  """Whether a word at `start` begins the text or a sentence (opening quotes aside)."""
  before = text[:start].rstrip().rstrip('"“‘\'(').rstrip()
  return not before or before[-1] in SENTENCE_END


def link(table: AliasTable, text: str) -> list[Mention]:
  """Longest-match mentions of `text`, in order, never overlapping."""
  words, gaps = tokens(text)
  lower = [w.group().lower() for w in words]
  mentions, i = [], 0
  while i < len(words):
    word = POSSESSIVE.sub('', lower[i])
    best, head = None, ''
    for n in range(1, min(table.max_words, len(words) - i) + 1):
      if n > 1:
        if gaps[i + n - 2] is None or ' '.join(lower[i:i + n - 1]) not in table.prefixes:
          break
        head += lower[i + n - 2] + gaps[i + n - 2]
        # A closed-class first word needs a capital after it: 'the City' (of London), not
        # 'the city'; hyphenated compounds ('have-not') are exempt.
        if (word in table.stopwords and gaps[i] == ' '
            and not any(w.group()[:1].isupper() for w in words[i + 1:i + n])):
          continue
      elif len(word) < 2 or word in table.stopwords or not _allowed_reading(table, word):
        continue
      candidates, cut = _lookup(table, head, lower[i + n - 1])
      if candidates:
        best = n, candidates, cut
    if best is None:
      i += 1
      continue
    n, candidates, cut = best
    start, end = words[i].start(), words[i + n - 1].end() - cut
    surface = text[start:end]
    mentions.append(Mention(start, end, surface,
                            _choose(candidates, surface, _initial(text, start))))
    i += n
  return mentions


def subword_spans(text: str, tokenizer) -> tuple[list[int], list[tuple[int, int]]]:
  """(piece ids, (begin, end) character span of each piece) of `text`.

  The ids are exactly `tokenizer.encode(text)`. Spans come from sentencepiece's offsets
  (bytes of the original text, converted to characters); a piece's span includes the
  whitespace its '▁' stands for, and may be empty.
  """
  sp = getattr(tokenizer, '_sp', tokenizer)  # plm's Tokenizer wraps a SentencePieceProcessor
  try:
    proto = sp.encode(text, return_type='proto')  # sentencepiece >= 0.2.1
  except TypeError:
    proto = sp.encode(text, out_type='immutable_proto')  # sentencepiece 0.2.0
  if text.isascii():
    char = range(len(text) + 1)
  else:  # byte offset -> character offset
    char = [0] * (len(text.encode('utf-8')) + 1)
    b = 0
    for c, ch in enumerate(text):
      n = len(ch.encode('utf-8'))
      char[b:b + n] = [c] * n
      b += n
    char[b] = len(text)
  return ([p.id for p in proto.pieces], [(char[p.begin], char[p.end]) for p in proto.pieces])


def align_to_subwords(text: str, mentions: Sequence[Mention], tokenizer
                      ) -> list[tuple[int, str]]:
  """[(token index, entity key)]: each mention's first subword in the row [bos] pieces [eos].

  The index counts the bos (the first piece is 1), so it indexes the model's input row
  directly. The first subword is the first piece whose span reaches past the mention's first
  character. A mention whose first subword is already an earlier mention's is dropped (one
  entity a token), as is one no piece covers.
  """
  _, spans = subword_spans(text, tokenizer)
  out, j = [], 0
  for m in sorted(mentions, key=lambda m: m.start):
    while j < len(spans) and spans[j][1] <= m.start:
      j += 1
    if j == len(spans) or spans[j][0] >= m.end or (out and out[-1][0] == j + 1):
      continue
    out.append((j + 1, m.entity))
  return out


def check_entities(alias_entities: Iterable[str], embedding_entities: Iterable[str]) -> None:
  """One error if an entity the aliases can link to has no vector in the embedding file."""
  alias_entities = set(alias_entities)
  missing = sorted(alias_entities - set(embedding_entities))
  if missing:
    raise UserError(f'{len(missing)} of the alias table\'s {len(alias_entities)} entities are '
                    f'not in the entity embedding file, e.g. {missing[:5]}: build the alias '
                    'table from the embedded entities (wordnet_aliases(entities=<the file\'s '
                    'entity keys>)), or export the embeddings of the graph the aliases come '
                    'from (the same kg.source and kg.dir)')
