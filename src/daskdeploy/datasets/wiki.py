"""Synthetic Wikipedia page-count logs.

No package ships the Wikipedia page-count dumps, so this module generates
look-alikes: one record per line, ``date time lang title count bytes``, e.g.::

    20081022 230000 en Barack_Obama 997 123091092

Titles are drawn with Zipf-like popularity from a vocabulary of about 30,000
realistic titles (percent-encoded like the real dumps; a handful of 2008 news
topics such as ``Barack_Obama`` rank near the top, so regular-expression
filters find matches), languages with weights close to the real traffic shares,
and about 0.5% of the lines are malformed (empty or with fewer than six
fields). Each file ``part-NNNNN`` covers one day, starting 2008-10-20, with
the hour increasing through the file.

Generation is streamed in chunks (bounded memory) and deterministic for a given
seed, size and number of files.
"""

from __future__ import annotations

import datetime
import gzip
import itertools
import os
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NamedTuple
from urllib.parse import quote

from daskdeploy.datasets._files import atomic_path, files_to_write

if TYPE_CHECKING:
    import numpy as np


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


#: Language -> share of lines, roughly the 2008 traffic shares.
LANGUAGES = {
    "en": 0.46,
    "ja": 0.09,
    "de": 0.09,
    "es": 0.07,
    "fr": 0.06,
    "ru": 0.05,
    "it": 0.04,
    "pl": 0.04,
    "pt": 0.03,
    "nl": 0.03,
    "zh": 0.02,
    "sv": 0.02,
}
#: Popular titles; the first is always the most popular, the others are
#: spread over the top ``FAMOUS_TOP`` ranks.
FAMOUS = (
    "Main_Page",
    "Special:Search",
    "Barack_Obama",
    "Michelle_Obama",
    "Barack_Obama_presidential_campaign,_2008",
    "Obama_administration",
    "Barack_Obama,_Sr.",
    "Obama,_Fukui",
    "Obama_(surname)",
    "Joe_Biden",
    "John_McCain",
    "Sarah_Palin",
    "Hillary_Rodham_Clinton",
    "George_W._Bush",
    "United_States_presidential_election,_2008",
    "Financial_crisis_of_2007\u20132008",
    "Lehman_Brothers",
    "Large_Hadron_Collider",
    "Twilight_(novel)",
    "The_Dark_Knight_(film)",
    "WALL-E",
    "Britney_Spears",
    "Michael_Phelps",
    "2008_Summer_Olympics",
    "Heroes_(TV_series)",
    "Halloween",
    "YouTube",
    "Facebook",
    "Wikipedia",
    "United_States",
    "Deutschland",
    "World_War_II",
    "Albert_Einstein",
    "Pokémon",
    "日本",
    "Москва",
)
FAMOUS_TOP = 300
FIRST_NAMES = _words(
    "John Mary James Anna Peter Maria David Elena Michael Laura Thomas Sophie Robert Julia "
    "Daniel Emma Paul Clara Hans Yuki Hiroshi Pierre Jean Carlos Luis Ivan Olga Marco Giulia "
    "Lars Ingrid Jan Piotr Ana Pedro Wei Kenji Fatima Omar Zoë"
)
LAST_NAMES = _words(
    "Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Taylor Moore Martin "
    "Jackson White Harris Clark Lewis Walker Young Müller Schmidt Schneider Fischer Weber "
    "Dubois Durand Lefèvre García Rodríguez Martínez López Rossi Russo Ferrari Tanaka Suzuki "
    "Sato Ivanov Kowalski Nowak Andersson Johansson de_Vries Jansen Kim"
)
PERSON_SUFFIXES = ("", "_(footballer)", "_(politician)", "_(musician)", "_(actor)")
PLACES = _words(
    "London Paris Berlin Madrid Rome Tokyo Moscow New_York_City Chicago Los_Angeles Boston "
    "Toronto Sydney Mumbai Beijing Shanghai Osaka Kyoto Vienna Prague Warsaw Kraków Budapest "
    "Lisbon Barcelona Sevilla Munich Hamburg Köln Zürich Geneva Amsterdam Rotterdam Brussels "
    "Stockholm Malmö Oslo Copenhagen Helsinki Dublin Edinburgh Manchester Istanbul Athens "
    "Cairo Lagos Nairobi São_Paulo Buenos_Aires Lima Bogotá Mexico_City Havana Seattle "
    "Denver Texas California Bavaria Scotland Japan Brazil India"
)
PLACE_PATTERNS = (
    "{}",
    "History_of_{}",
    "Economy_of_{}",
    "Culture_of_{}",
    "Demographics_of_{}",
    "Politics_of_{}",
    "Geography_of_{}",
    "Transport_in_{}",
    "University_of_{}",
    "{}_Airport",
    "{}_(disambiguation)",
    "List_of_people_from_{}",
    "Category:People_from_{}",
)
ADJECTIVES = _words(
    "Red Black White Blue Green Golden Silver Dark Lost Last First Little Great Old New "
    "Northern Southern Eastern Western Secret Silent Broken Hidden Wild Royal Holy Free "
    "Electric Atomic Modern Ancient Frozen Burning Crystal Iron Stone Flying Sleeping "
    "Endless Final"
)
NOUNS = _words(
    "River Mountain Island Castle Bridge Forest Ocean Empire Kingdom Garden Tower City "
    "Station Road Lake Valley Star Moon Sun Sky Storm Fire Dragon Knight Queen King Prince "
    "Angel Ghost Wolf Lion Eagle Horse Tiger Rose Heart Dream Night Day Summer Winter "
    "Revolution War Battle Army Church Temple Museum Theatre School Railway Company Party "
    "Republic Federation Galaxy Planet Machine Computer Language Music"
)
WORK_SUFFIXES = ("", "_(film)", "_(album)", "_(band)", "_(novel)", "_(TV_series)", "_(song)")
YEAR_TOPICS = ("music", "film", "sports", "science", "aviation", "literature", "video_gaming")
CJK_WORDS = _words(
    "日本 東京 大阪 京都 歴史 戦争 音楽 映画 鉄道 大学 中国 北京 上海 文化 経済 政治"
)
MALFORMED_FRACTION = 0.005
ZIPF_EXPONENT = 1.05
ZIPF_OFFSET = 5
START_DATE = datetime.date(2008, 10, 20)
CHUNK_LINES = 100_000
#: Bump when the generated content changes, so existing files are rewritten.
FORMAT_VERSION = 1


class _Vocabulary(NamedTuple):
    """Titles by decreasing popularity, with per-title sampling data."""

    titles: np.ndarray  # percent-encoded titles (object array)
    probability: np.ndarray  # of drawing each title
    boost: np.ndarray  # view-count multiplier, larger for popular titles
    page_bytes: np.ndarray  # typical size of one view of the page


def prepare_wiki(
    dest: str | os.PathLike[str],
    *,
    size: str | int = "50MB",
    files: int = 8,
    seed: int = 0,
    compress: bool = False,
) -> list[Path]:
    """Write synthetic Wikipedia page-count logs to ``dest``.

    Parameters
    ----------
    dest : str or PathLike
        Directory to write to; created if missing.
    size : str or int, default "50MB"
        Total uncompressed size, as bytes or a string understood by
        :func:`dask.utils.parse_bytes` (``"50MB"``, ``"2GiB"``). Each file gets
        an equal share, honoured to within a few lines.
    files : int, default 8
        Number of files, ``part-00000`` ... .
    seed : int, default 0
        Seed of the generator; the same arguments give identical files.
    compress : bool, default False
        Write gzip files (``part-00000.gz`` ...) instead of plain text.

    Returns
    -------
    list of Path
        The files written, in order.

    Raises
    ------
    ValueError
        If ``size`` cannot be parsed or is not positive, or ``files`` < 1.

    Notes
    -----
    Idempotent: files already written with the same arguments are kept, and an
    interrupted run resumes where it stopped.
    """
    from dask.utils import parse_bytes

    total = parse_bytes(size)
    if total <= 0 or files < 1:
        raise ValueError(f"size and files must be positive, got size={size!r}, files={files}")
    dest = Path(dest)
    file_bytes = -(-total // files)
    names = [f"part-{index:05d}{'.gz' if compress else ''}" for index in range(files)]
    wanted = {name: {"format": FORMAT_VERSION, "seed": seed, "bytes": file_bytes} for name in names}
    vocabulary = None
    for name in files_to_write(dest, "wiki", wanted):
        if vocabulary is None:
            vocabulary = _vocabulary(seed)
        index = names.index(name)
        with atomic_path(dest / name) as tmp, _open(tmp, compress) as out:
            _write_part(out, file_bytes, index, seed, vocabulary)
    return [dest / name for name in names]


def _open(path: Path, compress: bool) -> BinaryIO:
    return gzip.open(path, "wb", compresslevel=6) if compress else path.open("wb")


def _generated_titles() -> list[str]:
    """Return the non-famous titles, sorted (unencoded)."""
    people = [
        f"{first}_{last}{suffix}"
        for first, last, suffix in itertools.product(FIRST_NAMES, LAST_NAMES, PERSON_SUFFIXES)
    ]
    users = [f"User:{first}{last}" for first, last in itertools.product(FIRST_NAMES, LAST_NAMES)]
    places = [pattern.format(place) for pattern in PLACE_PATTERNS for place in PLACES]
    works = [
        f"{adjective}_{noun}{suffix}"
        for adjective, noun, suffix in itertools.product(ADJECTIVES, NOUNS, WORK_SUFFIXES)
    ]
    lists = [f"List_of_{noun.lower()}s" for noun in NOUNS]
    years = [str(year) for year in range(1000, 2009)] + [
        f"{year}_in_{topic}" for year in range(1900, 2009) for topic in YEAR_TOPICS
    ]
    cjk = [a + b for a, b in itertools.permutations(CJK_WORDS, 2)]
    titles = set(itertools.chain(people, users, places, works, lists, years, cjk, CJK_WORDS))
    return sorted(titles - set(FAMOUS))


def _vocabulary(seed: int) -> _Vocabulary:
    """Rank the title vocabulary by popularity and draw per-title properties.

    Parameters
    ----------
    seed : int
        Seed; the vocabulary uses its own stream, independent of the files'.

    Returns
    -------
    _Vocabulary
        Titles by decreasing popularity and their sampling data.
    """
    import numpy as np

    rng = np.random.default_rng(np.random.SeedSequence(seed))
    generated = _generated_titles()
    ranks = np.arange(len(FAMOUS) + len(generated))
    famous_ranks = rng.choice(np.arange(1, FAMOUS_TOP), len(FAMOUS) - 1, replace=False)
    is_generated = np.ones(len(ranks), dtype=bool)
    is_generated[[0, *famous_ranks]] = False
    titles = np.empty(len(ranks), dtype=object)
    titles[0] = FAMOUS[0]
    titles[famous_ranks] = FAMOUS[1:]
    titles[is_generated] = rng.permutation(generated)
    weights = (ranks + ZIPF_OFFSET) ** -ZIPF_EXPONENT
    return _Vocabulary(
        titles=np.array([quote(title, safe=":_(),.'-!") for title in titles], dtype=object),
        probability=weights / weights.sum(),
        boost=1 + 2000 // (ranks + 20),
        page_bytes=rng.lognormal(np.log(20_000), 0.8, len(ranks)).astype(np.int64) + 200,
    )


def _write_part(out: BinaryIO, nbytes: int, index: int, seed: int, vocabulary: _Vocabulary) -> None:
    """Write about ``nbytes`` of log lines for file ``index`` to ``out``."""
    import numpy as np

    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
    date = (START_DATE + datetime.timedelta(days=index)).strftime("%Y%m%d")
    written, line_bytes = 0, 60.0
    while written < nbytes:
        count = min(CHUNK_LINES, int((nbytes - written) / line_bytes) + 1)
        offsets = written + np.arange(count) * line_bytes
        hours = np.minimum(offsets * 24 // nbytes, 23).astype(int)
        lines = _lines(rng, vocabulary, date, hours)
        data = ("\n".join(lines) + "\n").encode("ascii")
        out.write(data)
        written += len(data)
        line_bytes = len(data) / count


def _lines(
    rng: np.random.Generator, vocabulary: _Vocabulary, date: str, hours: np.ndarray
) -> list[str]:
    """Return one log line per entry of ``hours`` (without newlines)."""
    import numpy as np

    n = len(hours)
    languages = rng.choice(list(LANGUAGES), n, p=list(LANGUAGES.values()))
    ranks = rng.choice(len(vocabulary.titles), n, p=vocabulary.probability)
    views = np.minimum(rng.zipf(2.2, n), 10_000) * vocabulary.boost[ranks]
    transferred = views * vocabulary.page_bytes[ranks] * rng.uniform(0.9, 1.1, n)
    lines = [
        f"{date} {hour:02d}0000 {language} {title} {count} {size}"
        for hour, language, title, count, size in zip(
            hours.tolist(),
            languages.tolist(),
            vocabulary.titles[ranks].tolist(),
            views.tolist(),
            transferred.astype(np.int64).tolist(),
            strict=True,
        )
    ]
    for i in np.flatnonzero(rng.random(n) < MALFORMED_FRACTION):
        lines[i] = " ".join(lines[i].split(" ")[: rng.integers(6)])
    return lines
