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
