-- newsreader feedback: the reader's votes, in their own database (feedback.db beside the history).
--
-- The history is read-only to visitors; votes are the one thing a visitor writes, through
-- Datasette's writable canned queries (metadata.yml: `vote`, `clear_vote`, CSRF-protected) or
-- `newsreader vote`. A vote is the reader's, never a judgment: the judge's rows stay in the history.

CREATE TABLE IF NOT EXISTS feedback (
    story_id INTEGER PRIMARY KEY CHECK (story_id >= 1),  -- stories.id in the history
    vote TEXT NOT NULL CHECK (vote IN ('up', 'down')),
    voted_at TEXT NOT NULL CHECK (voted_at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T*')
) STRICT;

-- The reader's own tags for a story (`newsreader vote ID --tags a,b` or a labels CSV's tags):
-- corrections of the judge's, which the rules model learns from with the votes.
CREATE TABLE IF NOT EXISTS feedback_tags (
    story_id INTEGER NOT NULL CHECK (story_id >= 1),
    tag TEXT NOT NULL CHECK (length(tag) BETWEEN 1 AND 32 AND tag GLOB '[a-z]*' AND tag NOT GLOB '*[^a-z0-9-]*'),
    PRIMARY KEY (story_id, tag)
) STRICT;
