-- newsreader schema: the single source of truth for every table and constraint.
--
-- The same file creates the history database (data/news.db), every per-site
-- sandbox database the judge agent writes into, and the test databases.
-- Code reads this file; it never restates these rules.
--
-- The rules live here so that SQLite itself rejects malformed rows: whatever
-- wrote the INSERT (an LLM's generated code, a tampered sandbox, a bug in the
-- host) gets the same verdict. Statements are idempotent (IF NOT EXISTS /
-- INSERT OR IGNORE) so applying the file to an existing database is safe.
--
-- Text columns share one shape of check: no C0 control characters or DEL
-- (GLOB class char(1)-char(31), char(127)), no NUL byte (checked on the
-- BLOB cast, since SQLite string functions stop at NUL), no surrounding
-- spaces, and a length cap.

-- Beyond those, text that a reader sees must not carry invisible formatting: C1 controls
-- (char(128)-char(159)), zero-width characters and marks (U+200B-U+200F, U+2060-U+2069,
-- U+FEFF, U+061C), line/paragraph separators and bidi embeddings/overrides
-- (U+2028-U+202E). Triggers refuse them (a trigger can be added to an existing
-- database; a CHECK cannot), with one message that says what to fix.

-- schema_version: 14  (PRAGMA user_version; pipeline/store.py brings an older database up to it:
-- a table whose definition here changed is rebuilt with its rows, in one transaction)
--
-- CHECK constraints on what the judge writes are named for the rule they enforce, so SQLite's
-- message ("CHECK constraint failed: summary_10_to_400_chars") tells the model what to fix.

-- The sites stories come from: Hacker News, Lobsters and each source the reader configured (a feed, a
-- plugin's site), written from the config by each refresh (pipeline/sites/, schema.sync_sources) and never
-- deleted while a story refers to one. `kind` is the site kind that reads it (a plugin may add kinds);
-- etag / last_modified are what its listing's server said at the last fetch that landed, sent back so
-- an unchanged feed answers 304.
CREATE TABLE IF NOT EXISTS sources (
    slug TEXT PRIMARY KEY CHECK (
        length(slug) BETWEEN 1 AND 32 AND slug GLOB '[a-z]*' AND slug NOT GLOB '*[^a-z0-9_-]*'
    ),
    kind TEXT NOT NULL CHECK (
        length(kind) BETWEEN 1 AND 32 AND kind GLOB '[a-z]*' AND kind NOT GLOB '*[^a-z0-9_-]*'
    ),
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 64 AND name = trim(name)
        AND name NOT GLOB ('*[' || char(1) || '-' || char(31) || char(127) || ']*')),
    label TEXT NOT NULL CHECK (length(label) BETWEEN 1 AND 32 AND label = trim(label)
        AND label NOT GLOB ('*[' || char(1) || '-' || char(31) || char(127) || ']*')),
    base_url TEXT NOT NULL CHECK (base_url GLOB 'https://[^/]*' OR base_url GLOB 'http://[^/]*'),
    url TEXT CHECK (url IS NULL OR ((url GLOB 'https://[^/]*' OR url GLOB 'http://[^/]*') AND length(url) <= 2048)),
    etag TEXT CHECK (etag IS NULL OR length(etag) <= 500),
    last_modified TEXT CHECK (last_modified IS NULL OR length(last_modified) <= 100)
) STRICT;

-- The controlled tag vocabulary. The judge may only use these slugs.
CREATE TABLE IF NOT EXISTS tags (
    slug TEXT PRIMARY KEY CHECK (
        length(slug) BETWEEN 1 AND 32
        AND slug GLOB '[a-z]*'
        AND slug NOT GLOB '*[^a-z0-9-]*'
    ),
    description TEXT NOT NULL CHECK (
        length(description) BETWEEN 1 AND 200
        AND description = trim(description)
        AND description NOT GLOB ('*[' || char(1) || '-' || char(31) || char(127) || ']*')
    )
) STRICT;

INSERT OR IGNORE INTO tags (slug, description) VALUES
    ('ai', 'AI, machine learning, LLMs'),
    ('programming', 'languages in general, compilers, type systems, software craft, developer tools'),
    ('python', 'the Python language or its ecosystem'),
    ('rust', 'the Rust language or its ecosystem'),
    ('go', 'the Go language or its ecosystem'),
    ('javascript', 'JavaScript/TypeScript, front-end frameworks'),
    ('web', 'web platform, browsers, HTTP, CSS, web apps'),
    ('databases', 'databases, SQL, data storage and processing'),
    ('devops', 'infrastructure, cloud, deployment, containers, CI'),
    ('security', 'security, privacy, cryptography, vulnerabilities'),
    ('systems', 'operating systems, kernels, networking, distributed systems, performance, low-level'),
    ('hardware', 'chips, devices, electronics, retro hardware'),
    ('science', 'science, math, space, medicine'),
    ('business', 'companies, startups, funding, markets, law, policy, regulation'),
    ('culture', 'history, society, careers, essays, everything else non-technical');

-- One row per refresh. Created 'running' when the refresh starts and finished
-- once; a process that dies leaves 'running', which the next refresh marks failed.
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL CHECK (started_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T*'),
    finished_at TEXT CHECK (finished_at IS NULL OR finished_at >= started_at),
    status TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'partial', 'failed')),
    model TEXT,
    executor TEXT,
    steps INTEGER CHECK (steps >= 0),
    llm_calls INTEGER CHECK (llm_calls >= 0),
    input_tokens INTEGER CHECK (input_tokens >= 0),
    output_tokens INTEGER CHECK (output_tokens >= 0),
    duration_s REAL CHECK (duration_s >= 0),
    stories INTEGER CHECK (stories >= 0),
    rejected INTEGER NOT NULL DEFAULT 0 CHECK (rejected >= 0),
    -- What the model calls cost, from LiteLLM's cost map; NULL when the model's price is unknown.
    cost_usd REAL CHECK (cost_usd >= 0),
    error TEXT,
    CHECK ((status = 'running') = (finished_at IS NULL))
) STRICT;

CREATE INDEX IF NOT EXISTS runs_started_at ON runs(started_at);

-- Per site and run: how that site's agent did.
CREATE TABLE IF NOT EXISTS run_sites (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    source TEXT NOT NULL REFERENCES sources(slug),
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    candidates INTEGER NOT NULL DEFAULT 0 CHECK (candidates >= 0),
    judged INTEGER NOT NULL DEFAULT 0 CHECK (judged >= 0),
    -- Of the judged, carried over from an earlier run without a model call (see judgments.basis).
    reused INTEGER NOT NULL DEFAULT 0 CHECK (reused >= 0 AND reused <= judged),
    steps INTEGER CHECK (steps >= 0),
    llm_calls INTEGER CHECK (llm_calls >= 0),
    input_tokens INTEGER CHECK (input_tokens >= 0),
    output_tokens INTEGER CHECK (output_tokens >= 0),
    fetch_s REAL CHECK (fetch_s >= 0),
    judge_s REAL CHECK (judge_s >= 0),
    cost_usd REAL CHECK (cost_usd >= 0),
    error TEXT,
    -- Something the reader should know about a site that landed (e.g. the agent ran out of
    -- steps, but its sandbox was complete and valid).
    note TEXT,
    PRIMARY KEY (run_id, source)
) STRICT;

-- One row per story ever seen, keyed by the site's own id (a feed item's: a hash of its GUID or link).
CREATE TABLE IF NOT EXISTS stories (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL REFERENCES sources(slug),
    source_id TEXT NOT NULL CHECK (
        length(source_id) BETWEEN 1 AND 64 AND source_id NOT GLOB '*[^A-Za-z0-9_-]*'
    ),
    kind TEXT NOT NULL DEFAULT 'story' CHECK (kind IN ('story', 'ask', 'show', 'job')),
    title TEXT NOT NULL CHECK (
        length(title) BETWEEN 1 AND 300
        AND title = trim(title)
        AND title NOT GLOB ('*[' || char(1) || '-' || char(31) || char(127) || ']*')
        AND instr(CAST(title AS BLOB), x'00') = 0
    ),
    -- The linked article; NULL for self posts (Ask HN, Lobsters text posts),
    -- whose only page is the discussion.
    url TEXT CHECK (url IS NULL OR (
        (url GLOB 'https://[^/]*' OR url GLOB 'http://[^/]*')
        AND length(url) <= 2048
        AND url NOT GLOB ('*[ ' || char(1) || '-' || char(31) || char(127) || ']*')
        AND instr(CAST(url AS BLOB), x'00') = 0
    )),
    -- Its discussion on its site; NULL for a feed item with none (a story needs a link or a discussion).
    discussion_url TEXT CHECK (discussion_url IS NULL OR (
        (discussion_url GLOB 'https://[^/]*' OR discussion_url GLOB 'http://[^/]*')
        AND length(discussion_url) <= 2048
        AND discussion_url NOT GLOB ('*[ ' || char(1) || '-' || char(31) || char(127) || ']*')
        AND instr(CAST(discussion_url AS BLOB), x'00') = 0
    )),
    domain TEXT CHECK (domain IS NULL OR (
        length(domain) BETWEEN 1 AND 255
        AND domain NOT GLOB ('*[ ' || char(1) || '-' || char(31) || char(127) || ']*')
        AND instr(CAST(domain AS BLOB), x'00') = 0
    )),
    -- A site's user name, or a feed item's author ("Jane Doe"): one line, trimmed.
    author TEXT CHECK (author IS NULL OR (
        length(author) BETWEEN 1 AND 64 AND author = trim(author)
        AND author NOT GLOB ('*[' || char(1) || '-' || char(31) || char(127) || ']*')
        AND instr(CAST(author AS BLOB), x'00') = 0
    )),
    submitted_at TEXT CHECK (submitted_at IS NULL OR
        submitted_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]*'),
    -- The site's own tags (Lobsters), a JSON array of strings.
    native_tags TEXT CHECK (native_tags IS NULL OR (json_valid(native_tags) AND json_type(native_tags) = 'array')),
    -- The URL with scheme, "www.", fragment, tracking parameters and trailing
    -- slash removed: the same article posted on both sites has the same key.
    canonical_url TEXT CHECK (canonical_url IS NULL OR length(canonical_url) BETWEEN 1 AND 2048),
    -- The latest judgment's summary, kept here for browsing and full-text search.
    summary TEXT,
    first_seen_run INTEGER REFERENCES runs(id),
    CONSTRAINT a_link_or_a_discussion CHECK (url IS NOT NULL OR discussion_url IS NOT NULL),
    UNIQUE (source, source_id)
) STRICT;

-- Titles and authors are cleaned at the door (parse.py); these refuse whatever was not.
-- The characters (see the top of this file) are written once, as a GLOB pattern in a view.
CREATE VIEW IF NOT EXISTS invisible_characters AS
SELECT '*[' || char(128) || '-' || char(159) || char(1564) || char(8203) || '-' || char(8207) || char(8232) || '-'
    || char(8238) || char(8288) || '-' || char(8297) || char(65279) || ']*' AS glob;

CREATE TRIGGER IF NOT EXISTS stories_plain_text_insert BEFORE INSERT ON stories
WHEN (NEW.title || ' ' || coalesce(NEW.author, '')) GLOB (SELECT glob FROM invisible_characters)
BEGIN SELECT RAISE(ABORT, 'title and author must be plain text: no invisible, bidi or control characters'); END;

CREATE TRIGGER IF NOT EXISTS stories_plain_text_update BEFORE UPDATE OF title, author ON stories
WHEN (NEW.title || ' ' || coalesce(NEW.author, '')) GLOB (SELECT glob FROM invisible_characters)
BEGIN SELECT RAISE(ABORT, 'title and author must be plain text: no invisible, bidi or control characters'); END;

CREATE INDEX IF NOT EXISTS stories_canonical_url ON stories(canonical_url);
CREATE INDEX IF NOT EXISTS stories_first_seen_run ON stories(first_seen_run);

-- Where a story stood in each run that saw it.
CREATE TABLE IF NOT EXISTS sightings (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    story_id INTEGER NOT NULL REFERENCES stories(id),
    rank INTEGER NOT NULL CHECK (rank BETWEEN 1 AND 1000),
    points INTEGER CHECK (points >= 0),      -- NULL for job posts
    comments INTEGER CHECK (comments >= 0),  -- NULL for job posts
    PRIMARY KEY (run_id, story_id)
) STRICT;

CREATE INDEX IF NOT EXISTS sightings_story ON sightings(story_id);

-- What a story links to, as the host read it (pipeline/articles.py): keyed by the story's
-- canonical URL, or, for a self post (Ask HN, a Lobsters text post), by its discussion URL,
-- and then holding the post's own text. In a sandbox, `text` is the excerpt the judge gets.
CREATE TABLE IF NOT EXISTS articles (
    url TEXT PRIMARY KEY CHECK (length(url) BETWEEN 1 AND 2048),
    status TEXT NOT NULL CHECK (status IN ('ok', 'not html', 'failed')),
    http_status INTEGER CHECK (http_status IS NULL OR http_status BETWEEN 100 AND 599),
    content_type TEXT CHECK (content_type IS NULL OR length(content_type) <= 200),
    bytes INTEGER NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    fetched_at TEXT NOT NULL CHECK (fetched_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T*'),
    final_url TEXT CHECK (final_url IS NULL OR length(final_url) <= 2048),
    title TEXT CHECK (title IS NULL OR length(title) <= 1000),
    description TEXT CHECK (description IS NULL OR length(description) <= 2000),
    author TEXT CHECK (author IS NULL OR length(author) <= 500),
    published TEXT CHECK (published IS NULL OR length(published) <= 64),
    language TEXT CHECK (language IS NULL OR length(language) <= 32),
    text TEXT CHECK (text IS NULL OR length(text) <= 2000000),
    error TEXT CHECK (error IS NULL OR length(error) <= 1000),
    CHECK ((status = 'ok') = (text IS NOT NULL))
) STRICT;

-- The first comments of a story's discussion, in the site's order (the latest read of it).
CREATE TABLE IF NOT EXISTS comments (
    story_id INTEGER NOT NULL REFERENCES stories(id),
    position INTEGER NOT NULL CHECK (position BETWEEN 1 AND 1000),
    author TEXT CHECK (author IS NULL OR length(author) BETWEEN 1 AND 64),
    depth INTEGER NOT NULL DEFAULT 0 CHECK (depth BETWEEN 0 AND 100),
    text TEXT NOT NULL CHECK (length(text) BETWEEN 1 AND 4000),
    PRIMARY KEY (story_id, position)
) STRICT;

-- The reader's recent votes, as examples of their taste: filled in a judge's sandbox only (from
-- feedback.db, newest first, bounded), read-only to the judge. Always empty in the history: a vote
-- is the reader's, never a judgment.
CREATE TABLE IF NOT EXISTS reader_votes (
    title TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
    domain TEXT CHECK (domain IS NULL OR length(domain) <= 255),
    tags TEXT CHECK (tags IS NULL OR length(tags) <= 200),
    vote TEXT NOT NULL CHECK (vote IN ('up', 'down'))
) STRICT;

-- What the learner sees of a story or a vote: its text (title, domain, site tags, the article's lead) as one
-- embedding model places it, computed once per model and text (pipeline/embeddings.py). float32 values,
-- little-endian. A cache: deleting its rows costs only the time to embed again.
CREATE TABLE IF NOT EXISTS embeddings (
    model TEXT NOT NULL CHECK (length(model) BETWEEN 1 AND 200),
    text_sha256 TEXT NOT NULL CHECK (length(text_sha256) = 64 AND text_sha256 NOT GLOB '*[^0-9a-f]*'),
    dimensions INTEGER NOT NULL CHECK (dimensions BETWEEN 1 AND 16384),
    vector BLOB NOT NULL CHECK (length(vector) = 4 * dimensions),
    PRIMARY KEY (model, text_sha256)
) STRICT, WITHOUT ROWID;

-- Each story's article as the judge reads it: `SELECT * FROM story_articles WHERE story_id = ?`.
CREATE VIEW IF NOT EXISTS story_articles AS
SELECT s.id AS story_id, a.title, a.description, a.text
FROM stories AS s JOIN articles AS a ON a.url = coalesce(s.canonical_url, s.discussion_url)
WHERE a.status = 'ok';

-- The judge's verdict on one story in one run. Written by the agent, in its sandbox.
CREATE TABLE IF NOT EXISTS judgments (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    story_id INTEGER NOT NULL REFERENCES stories(id),
    relevant INTEGER NOT NULL CONSTRAINT relevant_is_0_or_1 CHECK (relevant IN (0, 1)),
    score INTEGER NOT NULL CONSTRAINT score_is_0_to_100 CHECK (score BETWEEN 0 AND 100),
    summary TEXT NOT NULL
        CONSTRAINT summary_10_to_400_chars CHECK (length(summary) BETWEEN 10 AND 400)
        CONSTRAINT summary_without_surrounding_spaces CHECK (summary = trim(summary))
        CONSTRAINT summary_one_line_without_control_chars
            CHECK (summary NOT GLOB ('*[' || char(1) || '-' || char(31) || char(127) || ']*'))
        CONSTRAINT summary_without_nul CHECK (instr(CAST(summary AS BLOB), x'00') = 0),
    reason TEXT NOT NULL
        CONSTRAINT reason_1_to_300_chars CHECK (length(reason) BETWEEN 1 AND 300)
        CONSTRAINT reason_one_line_without_control_chars
            CHECK (reason NOT GLOB ('*[' || char(1) || '-' || char(31) || char(127) || ']*'))
        CONSTRAINT reason_without_nul CHECK (instr(CAST(reason AS BLOB), x'00') = 0),
    -- A verbatim quote from the story's article text that the summary rests on (NULL when no
    -- article was read): a trigger below refuses a quote the article does not contain.
    evidence TEXT
        CONSTRAINT evidence_1_to_200_chars CHECK (evidence IS NULL OR length(evidence) BETWEEN 1 AND 200)
        CONSTRAINT evidence_one_line_without_control_chars
            CHECK (evidence IS NULL OR evidence NOT GLOB ('*[' || char(1) || '-' || char(31) || char(127) || ']*')),
    -- One sentence on what the discussion adds (NULL when there is none).
    discussion TEXT
        CONSTRAINT discussion_10_to_300_chars CHECK (discussion IS NULL OR length(discussion) BETWEEN 10 AND 300)
        CONSTRAINT discussion_one_line_without_control_chars
            CHECK (discussion IS NULL OR discussion NOT GLOB ('*[' || char(1) || '-' || char(31) || char(127) || ']*')),
    -- The words of one of the story's first comments that the discussion line rests on, copied exactly
    -- (a trigger below checks them against comments, and wants them whenever there is a discussion line).
    discussion_evidence TEXT
        CONSTRAINT discussion_evidence_1_to_300_chars
            CHECK (discussion_evidence IS NULL OR length(discussion_evidence) BETWEEN 1 AND 300)
        CONSTRAINT discussion_evidence_one_line_without_control_chars
            CHECK (discussion_evidence IS NULL
                   OR discussion_evidence NOT GLOB ('*[' || char(1) || '-' || char(31) || char(127) || ']*')),
    -- Set by the host, never by the judge: a SHA-256 of everything the judgment rests on (prompt,
    -- model, profile, vocabulary, the story's title). A later run whose basis for the story is the
    -- same carries the judgment over instead of asking the model again...
    basis TEXT CHECK (basis IS NULL OR (length(basis) = 64 AND basis NOT GLOB '*[^0-9a-f]*')),
    -- ...and says which run first made it.
    reused_from INTEGER REFERENCES runs(id) CHECK (reused_from IS NULL OR reused_from < run_id),
    PRIMARY KEY (run_id, story_id)
) STRICT;

CREATE INDEX IF NOT EXISTS judgments_story ON judgments(story_id);

-- A summary must say more than the title: it may not equal the title or be
-- part of it, ignoring case, spaces and punctuation. A CHECK cannot read
-- another table, so triggers do it, for inserts and updates alike.
CREATE TRIGGER IF NOT EXISTS judgments_summary_not_title_insert
BEFORE INSERT ON judgments
WHEN (
    SELECT instr(
        lower(replace(replace(replace(replace(replace(replace(replace(s.title, ' ', ''), '.', ''), ',', ''), ':', ''), '-', ''), '''', ''), '"', '')),
        lower(replace(replace(replace(replace(replace(replace(replace(NEW.summary, ' ', ''), '.', ''), ',', ''), ':', ''), '-', ''), '''', ''), '"', ''))
    ) > 0
    FROM stories AS s WHERE s.id = NEW.story_id
)
BEGIN
    SELECT RAISE(ABORT, 'summary repeats the title: say what the story is and why it matters');
END;

CREATE TRIGGER IF NOT EXISTS judgments_summary_not_title_update
BEFORE UPDATE OF summary, story_id ON judgments
WHEN (
    SELECT instr(
        lower(replace(replace(replace(replace(replace(replace(replace(s.title, ' ', ''), '.', ''), ',', ''), ':', ''), '-', ''), '''', ''), '"', '')),
        lower(replace(replace(replace(replace(replace(replace(replace(NEW.summary, ' ', ''), '.', ''), ',', ''), ':', ''), '-', ''), '''', ''), '"', ''))
    ) > 0
    FROM stories AS s WHERE s.id = NEW.story_id
)
BEGIN
    SELECT RAISE(ABORT, 'summary repeats the title: say what the story is and why it matters');
END;

CREATE TRIGGER IF NOT EXISTS judgments_plain_text_insert BEFORE INSERT ON judgments
WHEN (NEW.summary || ' ' || NEW.reason) GLOB (SELECT glob FROM invisible_characters)
BEGIN SELECT RAISE(ABORT, 'summary and reason must be plain text: no invisible, bidi or control characters'); END;

CREATE TRIGGER IF NOT EXISTS judgments_plain_text_update BEFORE UPDATE OF summary, reason ON judgments
WHEN (NEW.summary || ' ' || NEW.reason) GLOB (SELECT glob FROM invisible_characters)
BEGIN SELECT RAISE(ABORT, 'summary and reason must be plain text: no invisible, bidi or control characters'); END;

-- Evidence is a quote of at least four words (or, in a script written without spaces, 15 characters),
-- found in the story's article as it is, starting and ending on a whole word (the article's characters just outside it are not letters or digits, ASCII):
-- not "e", not "ot recommend". What the rule cannot see is meaning: a quote of whole words that leaves
-- out a "not" before it is still a quote (ARCHITECTURE.md, "Evidence").
CREATE TRIGGER IF NOT EXISTS judgments_evidence_insert BEFORE INSERT ON judgments
WHEN NEW.evidence IS NOT NULL AND (
    NOT (NEW.evidence GLOB '*[^ ] *[^ ] *[^ ] *[^ ]*' OR (length(NEW.evidence) >= 15
         AND NOT NEW.evidence GLOB '* *' AND NEW.evidence GLOB ('*[^' || char(1) || '-' || char(127) || ']*')))
    OR NOT EXISTS (SELECT 1 FROM story_articles AS a WHERE a.story_id = NEW.story_id
        AND (char(10) || a.text || char(10)) GLOB ('*'
            || CASE WHEN NEW.evidence GLOB '[A-Za-z0-9]*' THEN '[^A-Za-z0-9]' ELSE '' END
            || replace(replace(replace(NEW.evidence, '[', '[[]'), '*', '[*]'), '?', '[?]')
            || CASE WHEN NEW.evidence GLOB '*[A-Za-z0-9]' THEN '[^A-Za-z0-9]' ELSE '' END || '*')))
BEGIN
    SELECT RAISE(ABORT, 'evidence must be at least four whole words copied exactly from this story''s text in story_articles (or be NULL)');
END;

CREATE TRIGGER IF NOT EXISTS judgments_evidence_update BEFORE UPDATE OF evidence, story_id ON judgments
WHEN NEW.evidence IS NOT NULL AND (
    NOT (NEW.evidence GLOB '*[^ ] *[^ ] *[^ ] *[^ ]*' OR (length(NEW.evidence) >= 15
         AND NOT NEW.evidence GLOB '* *' AND NEW.evidence GLOB ('*[^' || char(1) || '-' || char(127) || ']*')))
    OR NOT EXISTS (SELECT 1 FROM story_articles AS a WHERE a.story_id = NEW.story_id
        AND (char(10) || a.text || char(10)) GLOB ('*'
            || CASE WHEN NEW.evidence GLOB '[A-Za-z0-9]*' THEN '[^A-Za-z0-9]' ELSE '' END
            || replace(replace(replace(NEW.evidence, '[', '[[]'), '*', '[*]'), '?', '[?]')
            || CASE WHEN NEW.evidence GLOB '*[A-Za-z0-9]' THEN '[^A-Za-z0-9]' ELSE '' END || '*')))
BEGIN
    SELECT RAISE(ABORT, 'evidence must be at least four whole words copied exactly from this story''s text in story_articles (or be NULL)');
END;

-- A discussion line rests on a quote from one of the story's comments, by the rule evidence follows
-- (four whole words at least, as the comment has them). A judgment carried over from an earlier run
-- was checked when it was made: the first comments it quoted may have changed since.
CREATE TRIGGER IF NOT EXISTS judgments_discussion_evidence_insert BEFORE INSERT ON judgments
WHEN NEW.reused_from IS NULL AND (
    (NEW.discussion IS NOT NULL AND NEW.discussion_evidence IS NULL)
    OR (NEW.discussion_evidence IS NOT NULL AND (
        NOT (NEW.discussion_evidence GLOB '*[^ ] *[^ ] *[^ ] *[^ ]*' OR (length(NEW.discussion_evidence) >= 15
             AND NOT NEW.discussion_evidence GLOB '* *'
             AND NEW.discussion_evidence GLOB ('*[^' || char(1) || '-' || char(127) || ']*')))
        OR NOT EXISTS (SELECT 1 FROM comments AS c WHERE c.story_id = NEW.story_id
            AND (char(10) || c.text || char(10)) GLOB ('*'
                || CASE WHEN NEW.discussion_evidence GLOB '[A-Za-z0-9]*' THEN '[^A-Za-z0-9]' ELSE '' END
                || replace(replace(replace(NEW.discussion_evidence, '[', '[[]'), '*', '[*]'), '?', '[?]')
                || CASE WHEN NEW.discussion_evidence GLOB '*[A-Za-z0-9]' THEN '[^A-Za-z0-9]' ELSE '' END || '*')))))
BEGIN
    SELECT RAISE(ABORT, 'a discussion line rests on discussion_evidence: at least four whole words copied exactly from one of this story''s comments');
END;

CREATE TRIGGER IF NOT EXISTS judgments_discussion_evidence_update
BEFORE UPDATE OF discussion, discussion_evidence, story_id ON judgments
WHEN NEW.reused_from IS NULL AND (
    (NEW.discussion IS NOT NULL AND NEW.discussion_evidence IS NULL)
    OR (NEW.discussion_evidence IS NOT NULL AND (
        NOT (NEW.discussion_evidence GLOB '*[^ ] *[^ ] *[^ ] *[^ ]*' OR (length(NEW.discussion_evidence) >= 15
             AND NOT NEW.discussion_evidence GLOB '* *'
             AND NEW.discussion_evidence GLOB ('*[^' || char(1) || '-' || char(127) || ']*')))
        OR NOT EXISTS (SELECT 1 FROM comments AS c WHERE c.story_id = NEW.story_id
            AND (char(10) || c.text || char(10)) GLOB ('*'
                || CASE WHEN NEW.discussion_evidence GLOB '[A-Za-z0-9]*' THEN '[^A-Za-z0-9]' ELSE '' END
                || replace(replace(replace(NEW.discussion_evidence, '[', '[[]'), '*', '[*]'), '?', '[?]')
                || CASE WHEN NEW.discussion_evidence GLOB '*[A-Za-z0-9]' THEN '[^A-Za-z0-9]' ELSE '' END || '*')))))
BEGIN
    SELECT RAISE(ABORT, 'a discussion line rests on discussion_evidence: at least four whole words copied exactly from one of this story''s comments');
END;

-- One to three vocabulary tags per judgment.
CREATE TABLE IF NOT EXISTS story_tags (
    run_id INTEGER NOT NULL,
    story_id INTEGER NOT NULL,
    tag TEXT NOT NULL REFERENCES tags(slug),
    PRIMARY KEY (run_id, story_id, tag),
    FOREIGN KEY (run_id, story_id) REFERENCES judgments(run_id, story_id)
) STRICT;

CREATE INDEX IF NOT EXISTS story_tags_tag ON story_tags(tag);

-- (A tag the story already has is left to the primary key, so INSERT ... ON CONFLICT
-- DO NOTHING can re-run safely.)
CREATE TRIGGER IF NOT EXISTS story_tags_at_most_three
BEFORE INSERT ON story_tags
WHEN (SELECT count(*) FROM story_tags WHERE run_id = NEW.run_id AND story_id = NEW.story_id) >= 3
 AND NOT EXISTS (SELECT 1 FROM story_tags WHERE run_id = NEW.run_id AND story_id = NEW.story_id AND tag = NEW.tag)
BEGIN
    SELECT RAISE(ABORT, 'a story takes at most 3 tags');
END;

-- The same article seen on both sites in one run (same canonical URL).
CREATE TABLE IF NOT EXISTS story_links (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    story_id INTEGER NOT NULL REFERENCES stories(id),
    linked_story_id INTEGER NOT NULL REFERENCES stories(id),
    PRIMARY KEY (run_id, story_id, linked_story_id),
    CHECK (story_id <> linked_story_id)
) STRICT;

-- The collector's digest of a run's relevant stories (Markdown).
CREATE TABLE IF NOT EXISTS digests (
    run_id INTEGER PRIMARY KEY REFERENCES runs(id),
    body TEXT NOT NULL CHECK (length(body) BETWEEN 1 AND 100000)
) STRICT;

-- Every run's relevant stories as the digest shows them: tags in vocabulary order,
-- the other site's discussion when cross-posted, a cross-post listed once (under
-- its lower story id). The digest canned query, the Atom feed and the Markdown
-- digest all read this view.
CREATE VIEW IF NOT EXISTS digest_stories AS
SELECT j.run_id, r.started_at, s.id AS story_id, s.source,
       coalesce((SELECT label FROM sources WHERE slug = s.source), s.source) AS source_label, s.source_id, s.title,
       coalesce(s.url, s.discussion_url) AS url, j.summary, j.evidence, j.discussion,
       (SELECT group_concat(tag, ', ') FROM (
            SELECT st.tag FROM story_tags AS st JOIN tags AS t ON t.slug = st.tag
            WHERE st.run_id = j.run_id AND st.story_id = j.story_id ORDER BY t.rowid)) AS tags,
       (SELECT json_group_array(tag) FROM (
            SELECT st.tag FROM story_tags AS st JOIN tags AS t ON t.slug = st.tag
            WHERE st.run_id = j.run_id AND st.story_id = j.story_id ORDER BY t.rowid)) AS tag_list,
       j.score, s.discussion_url,
       (SELECT group_concat(o.discussion_url, ' ') FROM story_links AS l JOIN stories AS o ON o.id = l.linked_story_id
            WHERE l.run_id = j.run_id AND l.story_id = j.story_id) AS also_discussed_at,
       g.points, g.comments
FROM judgments AS j
JOIN stories AS s ON s.id = j.story_id
JOIN sightings AS g ON g.run_id = j.run_id AND g.story_id = j.story_id
JOIN runs AS r ON r.id = j.run_id
WHERE j.relevant = 1
  AND NOT EXISTS (
      SELECT 1 FROM story_links AS l
      JOIN judgments AS o ON o.run_id = l.run_id AND o.story_id = l.linked_story_id AND o.relevant = 1
      WHERE l.run_id = j.run_id AND l.story_id = j.story_id AND l.linked_story_id < j.story_id);

-- The digest's deliveries (pipeline/deliver.py): one row per channel and day, written before the send
-- (status 'sending': the intent) and after it ('sent', or 'pending' with the error and when to try
-- again, or 'failed' once max attempts are spent). A day is sent once per channel: a row 'sent' is
-- not sent again but by `newsreader deliver --resend`, which counts in `sends` and so in the
-- idempotency key (`message_id`: the email's Message-ID, the webhook's Idempotency-Key), while a
-- retry after a crash between send and record carries the same key, for the receiver to drop.
CREATE TABLE IF NOT EXISTS outbox (
    channel TEXT NOT NULL CHECK (length(channel) BETWEEN 1 AND 32 AND channel GLOB '[a-z]*'
        AND channel NOT GLOB '*[^a-z0-9_-]*'),
    day TEXT NOT NULL CHECK (day GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'),
    run_id INTEGER NOT NULL REFERENCES runs(id),  -- the run whose digest was sent
    status TEXT NOT NULL CHECK (status IN ('sending', 'sent', 'pending', 'failed')),
    stories INTEGER NOT NULL DEFAULT 0 CHECK (stories >= 0),
    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    sends INTEGER NOT NULL DEFAULT 1 CHECK (sends >= 1),
    message_id TEXT NOT NULL CHECK (length(message_id) BETWEEN 1 AND 200),
    last_error TEXT CHECK (last_error IS NULL OR length(last_error) <= 500),
    updated_at TEXT NOT NULL CHECK (updated_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T*'),
    next_attempt_at TEXT,
    sent_at TEXT,
    PRIMARY KEY (channel, day)
) STRICT;

-- Rows the host refused while syncing a sandbox, and why. Nothing is dropped silently.
CREATE TABLE IF NOT EXISTS rejections (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    source TEXT NOT NULL REFERENCES sources(slug),
    item TEXT NOT NULL,
    reason TEXT NOT NULL
) STRICT;

CREATE INDEX IF NOT EXISTS rejections_run ON rejections(run_id);
