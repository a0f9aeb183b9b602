"""Configuration: one TOML file, with every value traceable to where it came from.

Precedence, lowest first: built-in defaults < the config file (`--config`, else
`$NEWSREADER_CONFIG`, else `newsreader.toml` in the working directory, if present)
< environment variables (`NEWSREADER_DB`, `NEWSREADER_MODEL`, `NEWSREADER_API_BASE`)
< command-line flags. `newsreader config` prints the result with each value's origin.

A bad file is one clear error naming the key: unknown keys, wrong types and empty
values are refused rather than ignored.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from . import schema, settings
from .schema import reference_vocabulary
from .settings import Judge
from .sites import BUILTIN, DEFAULT_MAX_ITEMS, SLUG, Source

CONFIG_FILE = "newsreader.toml"
# Upper bounds of the whole-number keys (the command-line flags use the same ranges).
RANGES = {"retention_days": 36500, "max_steps": 50, "max_candidates": 500, "step_timeout": 3600,
          "site_timeout": 86400, "reuse_days": 3650, "article_cache_days": 3650,
          "reading.article_chars": 4000, "reading.comment_chars": 2000, "reading.comments": 10,
          "reading.batch_tokens": 1_000_000, "max_items": 500, "parallel": 64, "per_host": 16}
TAG_SLUG = re.compile(r"[a-z][a-z0-9-]{0,31}")
# What a `[sources.NAME]` table may hold, each with a value of the type it takes.
SOURCE_KEYS = {"enabled": True, "url": "https://", "feed": "https://", "kind": "feed", "name": "name",
               "label": "label", "max_items": 1}
SOURCE_KEY = re.compile(r"sources\.([^.]+)\.(" + "|".join(SOURCE_KEYS) + ")")


class ConfigError(Exception):
    """A configuration value that cannot be used; the message names the key."""


@dataclass
class Config:
    values: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def set(self, key: str, value: Any, origin: str) -> None:
        self.values[key] = value
        self.origins[key] = origin

    @property
    def db(self) -> Path:
        return Path(self["db"]) if self["db"] else Path(self["data_dir"]) / "news.db"

    @property
    def data_dir(self) -> Path:
        """Where raw/, digests/, logs/ and sandboxes/ go: data_dir if configured, else beside the database."""
        if self["db"] and self.origins["data_dir"] == "default":
            return Path(self["db"]).parent
        return Path(self["data_dir"])

    @property
    def sources(self) -> dict[str, Source]:
        """The enabled sources, by slug, in the order the config names them (Hacker News and Lobsters first)."""
        return {slug: source for slug, source in self.all_sources().items()
                if self.values.get(f"sources.{slug}.enabled", True)}

    def all_sources(self) -> dict[str, Source]:
        """Every configured source, enabled or not, each with its kind (a plugin's, if it says so)."""
        from . import plugins

        kinds = plugins.site_kinds()
        found = {}
        for slug in source_slugs(self.values):
            table = {key: self.values[f"sources.{slug}.{key}"] for key in SOURCE_KEYS
                     if f"sources.{slug}.{key}" in self.values}
            kind = kinds[slug if slug in BUILTIN else ("feed" if "feed" in table else table["kind"])]
            fallback = {"url": "", **kind.defaults(slug)}
            found[slug] = Source(slug, kind, table.get("feed") or table.get("url") or fallback["url"],
                                 table.get("name", fallback["name"]), table.get("label", fallback["label"]),
                                 table.get("max_items", None if slug in BUILTIN else DEFAULT_MAX_ITEMS))
        return found

    def judge(self) -> Judge:
        """The judge's settings, as one object for the refresh, eval and the agent."""
        return Judge(model=self["model.id"], model_options=dict(self["model.options"]),
                     executor=self["executor.name"], executor_options=dict(self["executor.options"]),
                     max_steps=self["max_steps"], step_timeout=self["step_timeout"],
                     site_timeout=self["site_timeout"], profile=self["profile.interests"],
                     budget_usd=self["budget_usd"],
                     reading=settings.Reading(**{f.name: self[f"reading.{f.name}"] for f in fields(settings.Reading)}),
                     embeddings=self["learning.embeddings"], embedding_options=dict(self["learning.options"]))

    @property
    def vocabulary(self) -> dict[str, str]:
        return dict(self["tags"])

    def lines(self) -> list[str]:
        """`key = value   # origin`, in a stable order, for `newsreader config`."""
        out = []
        for key in sorted(self.values):
            value = self.values[key]
            if key == "tags":
                for slug, meaning in value.items():
                    out.append(f"tags.{slug} = {meaning!r}  # {self.origins[key]}")
                continue
            out.append(f"{key} = {value!r}  # {self.origins[key]}")
        return out


def defaults() -> Config:
    config = Config()
    for key, value in {
        "data_dir": "data",
        "db": None,
        "retention_days": 14,
        "reuse_days": settings.REUSE_DAYS,
        "article_cache_days": settings.ARTICLE_CACHE_DAYS,
        "budget_usd": None,
        "max_steps": settings.DEFAULT_MAX_STEPS,
        "max_candidates": settings.MAX_CANDIDATES,
        "step_timeout": settings.STEP_TIMEOUT_S,
        "site_timeout": settings.SITE_TIMEOUT_S,
        "model.id": "rules",
        "model.options": {},
        "executor.name": settings.DEFAULT_EXECUTOR,
        "executor.options": {},
        "profile.interests": settings.DEFAULT_PROFILE,
        "learning.embeddings": "auto",
        "learning.options": {},
        "deliver": [],
        "public_url": None,
        **{f"reading.{f.name}": f.default for f in fields(settings.Reading)},
        "tags": reference_vocabulary(),
        "parallel": settings.PARALLEL_SOURCES,
        "per_host": settings.PER_HOST,
        **{f"sources.{s}.enabled": True for s in BUILTIN},
    }.items():
        config.set(key, value, "default")
    return config


def flatten(table: dict, prefix: str = "") -> dict[str, Any]:
    """{"model": {"id": "x"}} -> {"model.id": "x"}; option tables and [tags] stay whole."""
    out = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name not in ("model.options", "executor.options", "learning.options", "tags"):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def check(key: str, value: Any, expected: Any) -> Any:
    """Validate one value against the default's type and the key's own rules."""
    where = f"config key '{key}'"
    if key == "db":
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where} must be a file path")
        return value
    if key == "public_url":
        if not isinstance(value, str) or not re.fullmatch(r"https?://[^/\s]+(/\S*)?", value):
            raise ConfigError(f"{where} must be the http(s) address your newsreader serve answers at, not {value!r}")
        return value.rstrip("/")
    if key == "budget_usd":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 10**6:
            raise ConfigError(f"{where} must be a positive amount of US dollars, not {value!r}")
        return float(value)
    if isinstance(expected, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, not {value!r}")
    elif isinstance(expected, int):
        top = RANGES.get(key, RANGES.get(key.rsplit(".", 1)[-1], 10**9) if key.startswith("sources.") else 10**9)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
            raise ConfigError(f"{where} must be a whole number from 1 to {top}, not {value!r}")
    elif isinstance(expected, dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table")
    elif isinstance(expected, str):
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where} must be a non-empty string")
        value = " ".join(value.split()) if key == "profile.interests" else value.strip()
    if key.startswith("sources.") and key.endswith((".url", ".feed")) and not re.match(r"https?://[^/\s]+", value):
        raise ConfigError(f"{where} must be an http(s) URL, not {value!r}")
    if key == "learning.embeddings":
        check_embeddings(where, value)
    if key == "executor.name" and value not in executor_names(value):
        raise ConfigError(f"{where} must be one of {', '.join(executor_names(value))}, not {value!r}")
    if key == "deliver":
        return check_channels(value)
    if key == "tags":
        if not value:
            raise ConfigError(f"{where} needs at least one tag")
        for slug, meaning in value.items():
            if not TAG_SLUG.fullmatch(slug):
                raise ConfigError(f"config key 'tags.{slug}': a tag is lower-case letters, digits and '-'")
            if not isinstance(meaning, str) or not meaning.strip():
                raise ConfigError(f"config key 'tags.{slug}' must be a one-line description")
        value = {slug: " ".join(meaning.split()) for slug, meaning in value.items()}
        check_vocabulary(value)
    return value


CHANNEL_KEYS = {"name", "email", "smtp", "from", "apprise", "webhook", "when", "only_relevant", "min_score",
                "tags", "sources", "max_attempts", "per_story"}
DEFAULT_SENDER = "newsreader@localhost.localdomain"  # a mail channel's From when its config gives none
EMAIL = re.compile(r"[^@\s<>,;:\"()\[\]\\]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def check_channels(value: Any) -> list[dict]:
    """`[[deliver]]`: each a channel newsreader can use (one of email, apprise, webhook, with what it
    needs), checked before any fetch, so a bad channel is one line now, not a lost day later."""
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ConfigError("config key 'deliver' must be [[deliver]] tables, one a channel")
    names: set[str] = set()
    out = []
    for number, channel in enumerate(value, start=1):
        where = f"[[deliver]] number {number}"
        unknown = sorted(set(channel) - CHANNEL_KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown key '{unknown[0]}' (a channel has {', '.join(sorted(CHANNEL_KEYS))})")
        name = channel.get("name")
        if not isinstance(name, str) or not SLUG.fullmatch(name) or name in names:
            raise ConfigError(f"{where}: name must be unique, lower-case letters, digits, '-' and '_', not {name!r}")
        names.add(name)
        out.append(check_channel(f"[[deliver]] {name}", channel))
    return out


def check_channel(where: str, channel: dict) -> dict:
    kinds = [k for k in ("email", "apprise", "webhook") if k in channel]
    if len(kinds) != 1:
        raise ConfigError(f"{where} needs exactly one of email = \"you@example.org\", apprise = \"ntfy://...\", "
                          "webhook = \"https://...\"")
    out = {"name": channel["name"], "kind": kinds[0], "when": channel.get("when", "refresh"),
           "only_relevant": channel.get("only_relevant", True), "min_score": channel.get("min_score", 0),
           "tags": channel.get("tags", []), "sources": channel.get("sources", []),
           "max_attempts": channel.get("max_attempts", 5), "per_story": channel.get("per_story", False),
           **{k: channel[k] for k in kinds}}
    if not (out["when"] == "refresh" or (isinstance(out["when"], str)
                                         and re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", out["when"]))):
        raise ConfigError(f"{where}: when must be \"refresh\" or a time of day like \"07:30\", not {out['when']!r}")
    for key in ("only_relevant", "per_story"):
        if not isinstance(out[key], bool):
            raise ConfigError(f"{where}: {key} must be true or false")
    if out["per_story"] and out["kind"] != "apprise":
        raise ConfigError(f"{where}: per_story (a push a story) is for an apprise channel")
    for key, top in (("min_score", 100), ("max_attempts", 50)):
        if isinstance(out[key], bool) or not isinstance(out[key], int) or not 0 <= out[key] <= top:
            raise ConfigError(f"{where}: {key} must be a whole number from 0 to {top}")
    for key in ("tags", "sources"):
        if not isinstance(out[key], list) or not all(isinstance(v, str) and SLUG.fullmatch(v) for v in out[key]):
            raise ConfigError(f"{where}: {key} must be a list of names")
    check_target(where, out, channel)
    return out


def check_target(where: str, out: dict, channel: dict) -> None:
    """The channel's address: a mail address and SMTP server, an Apprise URL Apprise knows, an http(s) URL."""
    from urllib.parse import urlsplit

    target = out[out["kind"]]
    if not isinstance(target, str) or any(c in target for c in "\r\n"):
        raise ConfigError(f"{where}: {out['kind']} must be one line of text")
    if out["kind"] == "email":
        for key, address in (("email", target), ("from", channel.get("from", DEFAULT_SENDER))):
            if not isinstance(address, str) or not EMAIL.fullmatch(address):
                raise ConfigError(f"{where}: {key} is not a mail address: {address!r}")
        smtp = channel.get("smtp")
        parts = urlsplit(smtp) if isinstance(smtp, str) else None
        if parts is None or parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigError(f"{where}: smtp must be smtp://host:port or smtps://user@host:465, not {smtp!r}")
        out["smtp"], out["from"] = smtp, channel.get("from", DEFAULT_SENDER)
        if parts.username and not os.environ.get("NEWSREADER_SMTP_PASSWORD"):
            raise ConfigError(f"{where}: smtp names a user, and NEWSREADER_SMTP_PASSWORD is not set")
    elif out["kind"] == "apprise":
        import apprise

        if not apprise.Apprise().add(target):
            raise ConfigError(f"{where}: apprise: {target.split('://')[0]!r} is not a URL Apprise knows "
                              "(https://github.com/caronc/apprise/wiki)")
    elif not re.match(r"https?://[^/\s]+", target):
        raise ConfigError(f"{where}: webhook must be an http(s) URL, not {target!r}")
    elif not os.environ.get("NEWSREADER_WEBHOOK_SECRET"):
        raise ConfigError(f"{where}: a webhook's body is signed: set NEWSREADER_WEBHOOK_SECRET")


def check_embeddings(where: str, value: str) -> None:
    """An embeddings setting this install can use (the local model needs its extra), else one line saying why."""
    from . import embeddings

    try:
        if value != "auto":
            embeddings.make_embedder(value)
    except embeddings.EmbeddingError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def check_vocabulary(vocabulary: dict[str, str]) -> None:
    """Each tag through schema.sql's own `tags` table (in memory): the schema, not this file, sets the rules."""
    import sqlite3

    with schema.reference_db() as conn:
        conn.execute("DELETE FROM tags")
        for slug, meaning in vocabulary.items():
            try:
                conn.execute("INSERT INTO tags (slug, description) VALUES (?, ?)", [slug, meaning])
            except (sqlite3.Error, UnicodeError) as exc:
                raise ConfigError(f"config key 'tags.{slug}' is refused by schema.sql (a description is 1-200 "
                                  f"characters of plain text): {' '.join(str(exc).split())[:200]}") from None


def config_path(explicit: str | os.PathLike | None = None) -> tuple[Path | None, str]:
    if explicit:
        return Path(explicit), "--config"
    if os.environ.get("NEWSREADER_CONFIG"):
        return Path(os.environ["NEWSREADER_CONFIG"]), "NEWSREADER_CONFIG"
    if Path(CONFIG_FILE).is_file():
        return Path(CONFIG_FILE), CONFIG_FILE
    return None, ""


def load(explicit: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the config file, then the environment, then `overrides` (command-line flags)."""
    config = defaults()
    path, how = config_path(explicit)
    if path is not None:
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path} ({how}): {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path} ({how}) is not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        for key, value in flatten(table).items():
            source_key = SOURCE_KEY.fullmatch(key)
            if key not in config.values and not source_key:
                raise ConfigError(f"unknown config key '{key}' in {path}")
            expected = SOURCE_KEYS[source_key.group(2)] if source_key else config[key]
            config.set(key, check(key, value, expected), str(path))
        check_sources(config, path)
    for key, env in (("db", "NEWSREADER_DB"), ("model.id", "NEWSREADER_MODEL")):
        if os.environ.get(env):
            config.set(key, check(key, os.environ[env], config[key]), env)
    if os.environ.get("NEWSREADER_API_BASE"):
        config.set("model.options", {**config["model.options"], "api_base": os.environ["NEWSREADER_API_BASE"]},
                   "NEWSREADER_API_BASE")
    for key, value in (overrides or {}).items():
        if value is None or value == ():
            continue
        if key == "model.options":
            value = {**config["model.options"], **value}
        config.set(key, check(key, value, config[key]), "command line")
    if not config.sources:
        raise ConfigError("config enables no source: set sources.hn.enabled or sources.lobsters.enabled to true, "
                          "or add a feed ([sources.NAME] feed = \"https://...\")")
    for channel in config["deliver"]:  # a filter on a tag or source there is not would never match
        for key, known in (("tags", config.vocabulary), ("sources", config.all_sources())):
            unknown = [v for v in channel[key] if v not in known]
            if unknown:
                raise ConfigError(f"[[deliver]] {channel['name']}: {key} names {unknown[0]!r}, which is not one of "
                                  f"the configured {key}")
    return config


def source_slugs(values: dict[str, Any]) -> list[str]:
    """The sources a config names, in order: Hacker News and Lobsters first, then the config's own."""
    named = [m.group(1) for key in values if (m := SOURCE_KEY.fullmatch(key))]
    return list(dict.fromkeys([*BUILTIN, *named]))


def check_sources(config: Config, path: Path) -> None:
    """Each `[sources.NAME]` is a source newsreader can read: a usable name, and a feed URL or a kind
    this install has (a plugin's) with its URL; Hacker News and Lobsters stay their own kind."""
    from . import plugins

    for slug in source_slugs(config.values):
        has = {key for key in SOURCE_KEYS if f"sources.{slug}.{key}" in config.values}
        where = f"[sources.{slug}] in {path}"
        if slug in BUILTIN:
            if has & {"feed", "kind"}:
                raise ConfigError(f"{where}: {slug} is a built-in site; give a feed another name")
            continue
        if not SLUG.fullmatch(slug):
            raise ConfigError(f"{where}: a source's name is lower-case letters, digits, '-' and '_', "
                              "starting with a letter, at most 32")
        if ("feed" in has) == ("kind" in has):
            raise ConfigError(f"{where} needs either feed = \"https://...\" or kind = \"...\" with url")
        kind = config.values.get(f"sources.{slug}.kind")
        kinds = plugins.site_kinds()
        if kind is not None and kind not in kinds:
            others = ", ".join(kinds)
            raise ConfigError(f"{where}: kind {kind!r} is not a kind of site this install has (it has {others})")
        if kind is not None and "url" not in has:
            raise ConfigError(f"{where} needs url = \"https://...\": where its {kind} listing is")


def executor_names(name: str) -> tuple[str, ...]:
    """The executors there are: the built-in names, and the plugins' when `name` is none of those (the
    registry is loaded only then: `newsreader --help` stays light)."""
    if name in settings.EXECUTORS:
        return settings.EXECUTORS
    from . import plugins

    return tuple(plugins.kinds())


def slug_for(text: str, taken: set[str]) -> str:
    """A source name for a feed (from its title or host) that the config does not use yet."""
    base = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:28] or "feed"
    base = base if base[0].isalpha() else f"feed_{base}"[:28]
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}_{n}"
    return slug


def add_sources(path: Path, feeds: list[tuple[str, str, str]]) -> None:
    """Append a `[sources.NAME]` table per (name, feed URL, title) to the config file at `path` (created if
    need be); the file is checked as newsreader will read it before it replaces the old one."""
    import json

    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    def table(slug: str, url: str, title: str) -> str:
        named = f"name = {json.dumps(title[:64], ensure_ascii=False)}\n" if title else ""
        return f"\n[sources.{slug}]\nfeed = {json.dumps(url, ensure_ascii=False)}\n{named}"

    tables = "".join(table(*feed) for feed in feeds)
    new = path.with_name(path.name + ".new")
    new.write_text(old + ("\n" if old and not old.endswith("\n") else "") + tables, encoding="utf-8")
    try:
        load(new)
    except ConfigError:
        new.unlink()
        raise
    new.replace(path)
