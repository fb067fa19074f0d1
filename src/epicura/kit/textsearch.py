"""Text-search helpers shared by both databases: tokenising user queries safely and a trigram
word similarity like PostgreSQL's `word_similarity` (registered as a SQLite function)."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_QUERY_WORDS = 12

# PostgreSQL text-search configurations by recipe language; anything else uses `simple`.
TS_CONFIGS = {
    "en": "english", "fr": "french", "de": "german", "es": "spanish", "it": "italian",
    "pt": "portuguese", "nl": "dutch", "sv": "swedish", "da": "danish", "fi": "finnish",
    "no": "norwegian", "ru": "russian", "tr": "turkish", "hu": "hungarian", "ro": "romanian",
}


def ts_config(language: str | None) -> str:
    return TS_CONFIGS.get((language or "en").split("-")[0].lower(), "simple")


def fold(text: str) -> str:
    """Lower-case without accents: 'Crème brûlée' → 'creme brulee'."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def query_words(query: str) -> list[str]:
    """The words of a user's query, stripped of every operator and quote."""
    return _WORD.findall(fold(query))[:MAX_QUERY_WORDS]


def fts5_match(query: str) -> str | None:
    """A MATCH expression for SQLite FTS5 in which the user's text can only be words."""
    words = query_words(query)
    if not words:
        return None
    return " ".join(f'"{word}"' for word in words)


@lru_cache(maxsize=4096)
def _trigrams(word: str) -> frozenset[str]:
    padded = f"  {word} "
    return frozenset(padded[i : i + 3] for i in range(len(padded) - 2))


def word_similarity(query: str | None, text: str | None) -> float:
    """Mean over the query's words of the best trigram similarity with any word of `text`."""
    if not query or not text:
        return 0.0
    words = query_words(query)
    candidates = {w for w in _WORD.findall(fold(text)) if len(w) > 1}
    if not words or not candidates:
        return 0.0
    total = 0.0
    for word in words:
        grams = _trigrams(word)
        total += max(len(grams & _trigrams(c)) / len(grams | _trigrams(c)) for c in candidates)
    return total / len(words)
