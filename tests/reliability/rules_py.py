"""The schema's rules restated in Python, to check SQLite's verdicts against (differential testing)."""

import re

CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What the plain-text triggers refuse in summary, reason, title and author.
INVISIBLE = re.compile("[\x80-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
TITLE_PUNCTUATION = re.compile(r"[ .,:'\"-]")


ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def is_int(value) -> bool:
    return isinstance(value, int)  # bool is an int too, and the driver binds it as 0/1


def text_ok(value, low: int, high: int, *, trimmed: bool = False, spaces: bool = True) -> bool:
    """A string without control characters, of length low..high, optionally without surrounding spaces."""
    if not isinstance(value, str) or not low <= len(value) <= high or CONTROL.search(value):
        return False
    if trimmed and value != value.strip(" "):
        return False
    return spaces or " " not in value


def encodable(value) -> bool:
    """Lone surrogates cannot be sent to SQLite at all (the driver refuses them)."""
    try:
        str(value).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def squash(text: str) -> str:
    """SQLite's lower() folds ASCII only; the trigger removes spaces and . , : - ' \"."""
    return TITLE_PUNCTUATION.sub("", text.translate(ASCII_LOWER))


def judgment_ok(row: dict, title: str | None) -> bool:
    """relevant 0/1, score 0..100, summary 10..400 trimmed and not part of the title, reason 1..300."""
    values = [row["relevant"], row["score"], row["summary"], row["reason"]]
    if not all(encodable(v) for v in values) or title is None:
        return False
    if not is_int(row["relevant"]) or int(row["relevant"]) not in (0, 1):
        return False
    if not is_int(row["score"]) or not 0 <= int(row["score"]) <= 100:
        return False
    if not text_ok(row["summary"], 10, 400, trimmed=True) or not text_ok(row["reason"], 1, 300):
        return False
    if INVISIBLE.search(row["summary"]) or INVISIBLE.search(row["reason"]):
        return False
    return squash(row["summary"]) not in squash(title)


def url_ok(url, *, nullable: bool) -> bool:
    if url is None:
        return nullable
    return (isinstance(url, str) and encodable(url) and re.match(r"https?://[^/]", url) is not None
            and len(url) <= 2048 and not re.search(r"[\x00-\x20\x7f]", url))


def story_ok(story) -> bool:
    """The stories table's CHECKs for what the parser produces."""
    fields = [story.title, story.url, story.discussion_url, story.domain, story.author]
    if not all(encodable(v) for v in fields if v is not None):
        return False
    if INVISIBLE.search(story.title) or (story.author and INVISIBLE.search(story.author)):
        return False
    return (text_ok(story.title, 1, 300, trimmed=True)
            and url_ok(story.url, nullable=True) and url_ok(story.discussion_url, nullable=True)
            and (story.url is not None or story.discussion_url is not None)
            and (story.domain is None or (text_ok(story.domain, 1, 255, spaces=False)))
            and (story.author is None or text_ok(story.author, 1, 64, trimmed=True))
            and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", story.source_id) is not None)
